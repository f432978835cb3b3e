"""``umsi-bench`` / ``make bench`` / ``python -m umsi.cli.bench``: framework vs plain loop, inference, data
pipeline, metrics, dataset discovery and memory → ``outputs/bench/<date>/bench.{json,md}`` (:mod:`umsi.bench.run`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="umsi-bench",
        description="Benchmarks: the Lightning pipeline vs a plain PyTorch loop, inference, the data pipeline, the "
        "metrics vs pysaliency, umsi-serve vs in-process prediction, the encoder presets side by side, and peak "
        "memory.",
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--out", type=Path, default=None, help="default: outputs/bench/<date>")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test of the benchmark code)")
    parser.add_argument(
        "--parts",
        default="training,inference,data,metrics,serve,encoders,calibration,discovery",
        help="comma-separated subset (encoders: each hparams_search=encoders preset's forward time at 240×320; "
        "discovery: the dataset registry's readers over 10,000 SALICON and 2,000 UEyes items)",
    )
    parser.add_argument("--compile", action="store_true", help="also time torch.compile in the inference bench")
    parser.add_argument("--data", type=Path, default=None, help="a dataset root (salicon/…); default: synthetic")
    args = parser.parse_args(argv)
    from umsi.bench.run import write_benchmarks

    parts = [p.strip() for p in args.parts.split(",")]
    report, out = write_benchmarks(args.out, args.device, args.quick, parts, args.data, args.compile)
    print(report)
    print(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
