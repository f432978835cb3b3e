"""``umsi-probe-classes CKPT DIR…``: which classifier output fires for each folder of images.

The released head's class-index order is undocumented (umsi-reference §6.3). Run the converted model on one
folder per known class (SALICON val → natural_images, each Imp1k category folder) and read the order off the
histogram of predicted indices; then convert again with ``--class-order``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from umsi.data.datasets import read_image_bgr
from umsi.data.layouts import IMAGE_SUFFIXES
from umsi.inference.predictor import Predictor, load


def folder_images(folder: Path, limit: int | None = None) -> list[Path]:
    """Image files directly in ``folder``, sorted; at most ``limit``."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files[:limit] if limit else files


def predicted_classes(predictor: Predictor, files: Sequence[Path], batch_size: int = 8, desc: str = "") -> np.ndarray:
    """argmax class index per image (letterboxed and preprocessed as in training)."""
    indices = []
    for start in tqdm(range(0, len(files), batch_size), desc=desc, leave=False, disable=len(files) <= batch_size):
        batch = torch.stack([predictor.preprocess(read_image_bgr(f)) for f in files[start : start + batch_size]])
        indices.append(predictor.forward(batch)[1].argmax(dim=1))
    return torch.cat(indices).numpy()


def histogram_table(histograms: dict[str, np.ndarray], class_names: Sequence[str]) -> str:
    """Markdown: one row per folder with counts per output index and the most frequent index."""
    header = ["folder", "images", *(f"{i}: {n}" for i, n in enumerate(class_names)), "most frequent"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for folder, counts in histograms.items():
        top = int(counts.argmax())
        share = counts[top] / max(counts.sum(), 1)
        cells = [folder, str(int(counts.sum())), *map(str, counts.tolist()), f"{top} ({share:.0%})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def suggested_order(histograms: dict[str, np.ndarray], class_names: Sequence[str]) -> list[str] | None:
    """Folder names placed at their most frequent index, when every folder wins a different index;
    indices no folder wins keep their current name. ``None`` when two folders share an index."""
    winners = {folder: int(counts.argmax()) for folder, counts in histograms.items()}
    if len(set(winners.values())) != len(winners):
        return None
    order = list(class_names)
    for folder, index in winners.items():
        order[index] = folder
    return order if len(set(order)) == len(order) else None


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
    try:
        predictor = load(args.checkpoint, device=args.device)
        images = {folder: folder_images(folder, args.limit) for folder in args.folders}
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"umsi-probe-classes: {err}", file=sys.stderr)
        return 2
    num_classes = len(predictor.class_names)
    histograms: dict[str, np.ndarray] = {}
    for folder, files in images.items():
        predicted = predicted_classes(predictor, files, args.batch_size, desc=folder.name)
        histograms[folder.name] = np.bincount(predicted, minlength=num_classes)
    print(histogram_table(histograms, predictor.class_names))
    order = suggested_order(histograms, predictor.class_names)
    if order is None:
        print("\nNo consistent order: several folders share their most frequent index.")
    else:
        print(f"\nSuggested: umsi-convert-keras <file.h5> <out.ckpt> --class-order {','.join(order)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
