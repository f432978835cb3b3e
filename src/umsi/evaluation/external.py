"""``umsi-score maps=<folder> data=<dataset>``: score saliency maps made by any other tool with umsi's metrics.

The maps are matched to the dataset's items by the item's name (its path below the dataset's image folder without
suffix, e.g. ``ads/poster1`` or ``COCO_val2014_000000000042``), else by the image's stem; a trailing ``_heatmap``
(what ``umsi-predict`` writes) is ignored. Each map must have its ground-truth map's size (the MIT benchmark's
rule: the prediction at the stimulus size) and is read as 8-bit grayscale. Every missing, unreadable or
wrong-size map is named before anything is scored (:class:`~umsi.errors.UserError`). Scores are the same as
``umsi-eval``'s in the original frame, written as the same per-dataset table and models × datasets cross table
(``tables.md``, ``metrics.json``, ``per_image.csv``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from umsi.data.check import layout_kind
from umsi.data.layouts import IMAGE_SUFFIXES, SaliencyItem
from umsi.data.readers import read_map
from umsi.data.registry import find_items, materialise
from umsi.data.transforms import SampleTransform
from umsi.errors import UserError
from umsi.evaluation.registered import cross_table_markdown, dataset_tables_markdown
from umsi.evaluation.report import CENTER_BIAS, write_report
from umsi.evaluation.scoring import ScoringSettings, score

log = logging.getLogger(__name__)
PREDICT_SUFFIX = "_heatmap"
_SMALL_INPUT = (32, 32)  # the network input _EvalDataset also builds; unused when the maps are given


class MapFolderError(UserError, ValueError):
    """Maps of the folder are missing, unreadable or of the wrong size; the message names every one."""

    kind = "maps error"


def index_maps(folder: Path) -> dict[str, Path]:
    """name → map file of every image file under ``folder``: its relative path without suffix (and ``_heatmap``),
    and its bare stem too when that is unambiguous."""
    by_key: dict[str, Path] = {}
    stems: dict[str, list[Path]] = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            path = Path(directory, name)
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            key = path.relative_to(folder).with_suffix("").as_posix()
            key = key.removesuffix(PREDICT_SUFFIX)
            by_key[key] = path
            stems.setdefault(Path(key).name, []).append(path)
    for stem, paths in stems.items():
        if len(paths) == 1:
            by_key.setdefault(stem, paths[0])
    return by_key


def _size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as image:
            return image.size[1], image.size[0]
    except Exception:  # Pillow raises many types on malformed files; reported as unreadable
        return None


def match_maps(items: list[SaliencyItem], keys: list[str], folder: Path) -> list[Path]:
    """The map of every item (its key, else its image's stem); raises :class:`MapFolderError` naming every
    missing, unreadable or wrong-size map."""
    maps = index_maps(folder)
    found, problems = [], []
    for item, key in zip(items, keys, strict=True):
        path = maps.get(key) or maps.get(item.image.stem)
        if path is None:
            problems.append(f"missing: no map for {item.image} (expected {folder / key}.png or {key}_heatmap.png)")
            continue
        size, expected = _size(path), _size(item.saliency)
        if size is None:
            problems.append(f"unreadable: {path}")
        elif size != expected:
            problems.append(
                f"wrong size: {path} is {size[1]}×{size[0]}, its ground truth {item.saliency} is "
                f"{expected[1]}×{expected[0]}"
            )
        found.append(path)
    if problems:
        raise MapFolderError(
            f"{len(problems)} of the {len(items)} maps in {folder} cannot be scored; write each at its ground-truth "
            "map's size, named like its image:\n  " + "\n  ".join(problems)
        )
    return found


def score_maps(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Score the maps of ``cfg.maps`` on the ``cfg.part`` items of ``cfg.data``; writes the tables into
    ``out_dir`` and returns the results (the shape of ``umsi-eval``'s)."""
    from umsi.evaluation.runner import summarize

    folder = Path(str(cfg.maps))
    if not folder.is_dir():
        raise MapFolderError(f"maps={folder} is not a folder: point maps= at the folder of saliency maps")
    data = cfg.data
    layout = layout_kind(data)
    options = {k: OmegaConf.select(data, str(k), throw_on_resolution_failure=False) for k in data}
    found = find_items(layout, str(data.root), options)
    found.raise_errors(key="data.root")
    chosen = found.items if cfg.part == "all" else found.part(str(cfg.part))
    sigma = float(options.get("sigma") or 19.0)
    items = materialise(found, chosen, [], options.get("derived_dir"), sigma)
    paths = match_maps(items, [it.key for it in chosen], folder)
    settings = ScoringSettings(frame="original", seed=cfg.seed, batch_size=cfg.batch_size, progress=cfg.progress)
    transform = SampleTransform(_SMALL_INPUT, 1.0, "official")

    def given(index: int) -> np.ndarray:
        return read_map(paths[index]).astype(np.float32) / 255.0

    name = str(cfg.name or folder.name)
    records = score(items, transform, None, settings, None, f"{layout}: {name}", given=given)
    base = score(items, transform, None, settings, None, f"{layout}: centre bias")
    entry = {
        "status": "evaluated",
        "registered": True,
        "root": str(found.root),
        "n_images": len(items),
        "splits": {name: f"{cfg.part} of {found.source}"},
        "models": {name: summarize(records, []), CENTER_BIAS: summarize(base, [])},
    }
    results = {
        "settings": {"frame": "original", "blur_sigma": None, "conventions": ["umsi", "mit"]},
        "models": {name: {"path": str(folder), "classes": []}},
        "datasets": {layout: entry},
    }
    rows = [{"dataset": layout, "model": name, **r} for r in records]
    rows += [{"dataset": layout, "model": CENTER_BIAS, **r} for r in base]
    write_report(out_dir, results, rows, markdown=score_markdown(results))
    return results


def score_markdown(results: dict[str, Any]) -> str:
    """``tables.md`` of ``umsi-score``: the dataset's table and the models × datasets cross table."""
    return "# umsi-score\n\n" + dataset_tables_markdown(results) + cross_table_markdown(results)
