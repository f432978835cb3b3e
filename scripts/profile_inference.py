"""Where the CPU forward pass of UMSI spends its time: ``torch.profiler`` tables per model and batch size.

``python scripts/profile_inference.py [--models official default] [--batches 1 8] [--threads N] [--fold]``
prints, for ``UMSI.official()`` and ``UMSI()`` (random weights, eval mode) at 240×320, the wall time of one
profiled forward pass and the ops with the largest self CPU time (ms per image, share of the total), by op name
and by op name and input shape. ``--fold`` profiles the network as ``umsi.load`` runs it (BatchNorm folded).
The findings are summarised in docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import time


def profile_forward(model, batch: int, size: tuple[int, int], rows: int) -> str:
    """One warm-up and one profiled forward pass of a (batch, 3, *size) input → a Markdown section."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    x = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(0)) * 50
    with torch.inference_mode():
        model(x)
        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            model(x)
        wall = time.perf_counter() - start
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    lines = [f"wall {wall / batch:.3f} s per image (profiled), ops {total / 1e6 / batch:.3f} s per image", ""]
    for title, events in (
        ("op", prof.key_averages()),
        ("op and input shape", prof.key_averages(group_by_input_shape=True)),
    ):
        lines += [f"| {title} | ms per image | share | calls |", "| --- | --- | --- | --- |"]
        for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:rows]:
            name = e.key if title == "op" else f"{e.key} {str(e.input_shapes)[:80]}"
            share = e.self_cpu_time_total / total
            lines.append(f"| {name} | {e.self_cpu_time_total / 1e3 / batch:.1f} | {share:.1%} | {e.count} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["official", "default"], choices=["official", "default"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's)")
    parser.add_argument("--input-size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    parser.add_argument("--rows", type=int, default=12, help="ops listed per table")
    parser.add_argument("--fold", action="store_true", help="BatchNorm folded, as umsi.load runs the network")
    args = parser.parse_args(argv)
    import torch

    from umsi.inference.fold import fold_batchnorm
    from umsi.models import UMSI

    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = args.input_size
    spin = os.environ.get("GOMP_SPINCOUNT")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, GOMP_SPINCOUNT {spin}, input {h}×{w}")
    for name in args.models:
        torch.manual_seed(0)
        model = (UMSI.official() if name == "official" else UMSI()).eval()
        if args.fold:
            fold_batchnorm(model)
        for batch in args.batches:
            label = f"UMSI.{name}()" if name == "official" else "UMSI()"
            print(f"\n## {label}{' (BatchNorm folded)' if args.fold else ''}, batch {batch}\n")
            print(profile_forward(model, batch, tuple(args.input_size), args.rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
