"""``umsi-probe-classes CKPT DIR…`` / ``python -m umsi.cli.probe_classes``: which classifier output fires for each
folder of images, and the ``--class-order`` for ``umsi-convert-keras`` (:mod:`umsi.inference.probe`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="umsi-probe-classes",
        description="Histogram of predicted class indices per folder of images, to find the class order of a "
        "converted head. Name each folder after its class (e.g. natural_images = SALICON val).",
    )
    parser.add_argument("checkpoint", type=Path, help="a checkpoint from umsi-convert-keras or umsi-train")
    parser.add_argument("folders", type=Path, nargs="+", help="one folder of images per class")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per folder")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    from umsi.inference.predictor import load
    from umsi.inference.probe import histogram_table, probe_folders, suggested_order

    try:
        predictor = load(args.checkpoint, device=args.device)
        histograms = probe_folders(predictor, args.folders, args.limit, args.batch_size)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"umsi-probe-classes: {err}", file=sys.stderr)
        return 2
    print(histogram_table(histograms, predictor.class_names))
    order = suggested_order(histograms, predictor.class_names)
    if order is None:
        print("\nNo consistent order: several folders share their most frequent index.")
    else:
        print(f"\nSuggested: umsi-convert-keras <file.h5> <out.ckpt> --class-order {','.join(order)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
