"""Which classifier output fires for each folder of images (what ``umsi-probe-classes CKPT DIR…`` prints).

The released head's class-index order is undocumented (umsi-reference §6.3). Run the converted model on one
folder per known class (SALICON val → natural_images, each Imp1k category folder) and read the order off the
histogram of predicted indices; then convert again with ``--class-order``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from umsi.data.layouts import IMAGE_SUFFIXES
from umsi.data.readers import read_image_bgr
from umsi.inference.predictor import Predictor


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


def probe_folders(
    predictor: Predictor, folders: Sequence[Path], limit: int | None = None, batch_size: int = 8
) -> dict[str, np.ndarray]:
    """Histogram of predicted class indices, (K,) int counts, per folder name. Raises FileNotFoundError for a
    folder without images."""
    images = {folder: folder_images(folder, limit) for folder in folders}
    num_classes = len(predictor.class_names)
    return {
        folder.name: np.bincount(
            predicted_classes(predictor, files, batch_size, desc=folder.name), minlength=num_classes
        )
        for folder, files in images.items()
    }
