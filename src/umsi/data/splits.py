"""The file lists a training run trained and validated on, per dataset (``<stage dir>/split.json``).

Written when a stage starts, read by ``umsi-eval`` so that it scores exactly the images the run held out. One entry
per dataset the stage read::

    {"imp1k": {"root": "/datasets/imp1k", "source": "<where the split came from>",
               "train": ["imgs/ads/a.png", ...], "val": ["imgs/ads/b.png", ...]},
     "salicon": {...}}

Image paths are relative to ``root`` (absolute when an image lies outside it), so a moved tree still matches.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from umsi.data.layouts import DatasetLayoutError, SaliencyItem
from umsi.utils.io import write_json

PARTS = ("train", "val")


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def dataset_split(
    root: str | Path, source: str, train: Sequence[SaliencyItem], val: Sequence[SaliencyItem]
) -> dict[str, Any]:
    """One dataset's entry: its root, where the split came from, and the image of each train and val item."""
    root = Path(root)
    return {
        "root": str(root),
        "source": source,
        "train": [_relative(item.image, root) for item in train],
        "val": [_relative(item.image, root) for item in val],
    }


def write_split(path: str | Path, split: dict[str, dict[str, Any]]) -> Path:
    """Write a run's split (dataset → :func:`dataset_split`) atomically as JSON."""
    return write_json(path, split)


def read_split(path: str | Path) -> dict[str, dict[str, Any]]:
    """A run's recorded split. Raises :class:`~umsi.data.layouts.DatasetLayoutError` naming the file when it is not
    one (not JSON, or an entry without its ``train`` / ``val`` lists)."""
    path = Path(path)
    try:
        split = json.loads(path.read_text())
        if not isinstance(split, dict) or not all(
            isinstance(entry, dict) and all(isinstance(entry.get(part), list) for part in PARTS)
            for entry in split.values()
        ):
            raise ValueError("expected {dataset: {root, source, train: [...], val: [...]}}")
    except (OSError, ValueError) as err:
        raise DatasetLayoutError(
            f"{path} is not a run's recorded split ({err}); it is written by umsi-train, restore it from the run"
        ) from None
    return split


def recorded_images(entry: dict[str, Any], part: str, root: str | Path | None = None) -> list[Path]:
    """The images of one part (``train`` or ``val``) of a dataset entry, resolved against ``root`` (default: the
    root recorded with it)."""
    base = Path(root if root is not None else entry["root"])
    return [base / name for name in entry[part]]
