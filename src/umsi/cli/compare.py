"""``umsi-compare RUN_OR_SWEEP_DIR… [--output DIR] [--plot] [--sort METRIC]`` / ``python -m umsi.cli.compare``:
local runs and sweeps side by side (:func:`umsi.compare.write_comparison`); exit code 2 on bad input."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="umsi-compare",
        description="Compare local umsi-train runs: config keys that differ, final metrics (summary.json), "
        "best validation metrics of the last stage (csv/metrics.csv) and wall time.",
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="RUN_OR_SWEEP_DIR",
        help="a run folder, a multirun sweep folder, or a folder of runs (e.g. outputs/)",
    )
    parser.add_argument("--output", type=Path, help="where compare.md/.csv go (default: outputs/compare/<date>-<time>)")
    parser.add_argument("--plot", action="store_true", help="also draw val/cc and val/loss per epoch (val_curves.png)")
    parser.add_argument(
        "--sort",
        default="cc",
        metavar="METRIC",
        help="column to sort by: cc (default, final, highest first), kl, acc, val/cc, val/loss, "
        "wall_s, run or a config key; kl/loss/wall lowest first",
    )
    parser.add_argument("--reverse", action="store_true", help="flip the sort direction")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="umsi-compare: %(message)s")
    from umsi.compare import markdown_table, write_comparison

    try:
        table, out_dir = write_comparison(args.paths, args.output, args.sort, args.reverse, args.plot)
    except (FileNotFoundError, ValueError) as err:
        print(f"umsi-compare: {err}", file=sys.stderr)
        return 2
    print(markdown_table(table), end="")
    print(f"{len(table)} runs; written to {out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
