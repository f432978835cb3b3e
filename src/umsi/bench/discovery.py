"""Dataset discovery speed: the registry's readers over trees of empty files (``make bench``'s ``discovery`` part).

Finding the items (listing folders, pairing images with maps and fixations by stem, reading ``info.csv``) is what
every ``umsi-train`` / ``umsi-eval`` / ``umsi-data-check`` start pays before it reads a pixel. The bench builds a
SALICON-sized tree (10,000 train + 5,000 val items, image + map + fixation file each) and a UEyes tree of 2,000
items (image, heatmap and fixmap of three durations, ``info.csv``) of empty files, and times
:func:`umsi.data.registry.find_items` on each. Target: under 3 s each.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from umsi.data.registry import find_items

TARGET_SECONDS = 3.0
UEYES_CATEGORIES = ("desktop", "mobile", "poster", "web")


def _touch_all(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).touch()


def make_salicon_tree(root: Path, train: int = 10_000, val: int = 5_000) -> Path:
    """images/, maps/, fixations/ of ``train`` + ``val`` empty items in the SALICON 2017 layout."""
    for split, count in (("train", train), ("val", val)):
        stems = [f"COCO_{split}2014_{i:012d}" for i in range(count)]
        _touch_all(root / "images" / split, [f"{s}.jpg" for s in stems])
        _touch_all(root / "maps" / split, [f"{s}.png" for s in stems])
        _touch_all(root / "fixations" / split, [f"{s}.mat" for s in stems])
    return root


def make_ueyes_tree(root: Path, items: int = 2_000) -> Path:
    """The UEyes Zenodo layout with ``items`` empty images, heatmaps and fixmaps of 1/3/7 s, and ``info.csv``."""
    stems = [f"{i:05d}" for i in range(items)]
    _touch_all(root / "images", [f"{s}.png" for s in stems])
    for duration in ("1s", "3s", "7s"):
        for kind in ("heatmaps", "fixmaps"):
            _touch_all(root / "saliency_maps" / f"{kind}_{duration}", [f"{s}.png" for s in stems])
    rows = ["Image Name,category,block,train/test"]
    rows += [
        f"{s}.png,{UEYES_CATEGORIES[i % 4]},{i // 36 + 1},{'test' if i % 5 == 0 else 'train'}"
        for i, s in enumerate(stems)
    ]
    (root / "info.csv").write_text("\n".join(rows) + "\n")
    return root


def _time(layout: str, root: Path, repeats: int) -> dict[str, Any]:
    times, count = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        found = find_items(layout, root, {})
        times.append(time.perf_counter() - start)
        found.raise_errors()
        count = len(found.items)
    best = min(times)
    return {"items": count, "seconds": best, "all_seconds": times, "met": best < TARGET_SECONDS}


def bench_discovery(
    tmp: Path, salicon: tuple[int, int] = (10_000, 5_000), ueyes: int = 2_000, repeats: int = 3
) -> dict:
    """Seconds (best of ``repeats``; the first is a cold directory cache) to find every item of each tree."""
    salicon_root = make_salicon_tree(tmp / "salicon", *salicon)
    ueyes_root = make_ueyes_tree(tmp / "ueyes", ueyes)
    return {
        "salicon": _time("salicon", salicon_root, repeats),
        "ueyes": _time("ueyes", ueyes_root, repeats),
        "target_seconds": TARGET_SECONDS,
    }


def discovery_markdown(results: dict[str, Any]) -> list[str]:
    """The bench report's section."""
    lines = [
        "",
        "## Dataset discovery (empty files; best of the repeats, first = cold)",
        "",
        "| tree | items | seconds | all runs | < 3 s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in ("salicon", "ueyes"):
        r = results[name]
        runs = ", ".join(f"{t:.2f}" for t in r["all_seconds"])
        lines.append(f"| {name} | {r['items']} | {r['seconds']:.3f} | {runs} | {'yes' if r['met'] else '**no**'} |")
    return lines
