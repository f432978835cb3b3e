"""Optional decode-once cache of letterboxed images and maps (``data.cache_dir``).

Per split, ``<name>-<H>x<W>-<digest>`` in the cache folder holds:

* ``.npy``: one record per item, memory-mapped read-only so DataLoader workers share the pages: ``image``
  (H, W, 3) uint8 BGR letterboxed to the input size, ``saliency`` (sH, sW) uint8 letterboxed to the output size
  (exactly what :class:`~umsi.data.transforms.SampleTransform` builds before normalising, so the cache does not
  depend on ``data.preprocessing``), ``source_hw`` (the decoded image size) and ``fixations`` ([start, stop)
  into the points file);
* ``.fixations.npy``: every item's (x, y) fixation points at the source resolution, float32;
* ``.json``: the manifest, written last. It names every source file with its size and ``mtime_ns`` and the two
  sizes; any difference rebuilds the cache. The manifest is deleted before a rebuild and every file is written
  to a temporary name and renamed, so an interrupted build never leaves a cache that looks valid.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from umsi.data.fixations import read_fixations
from umsi.data.layouts import SaliencyItem
from umsi.data.readers import read_image_bgr, read_map
from umsi.data.transforms import letterbox
from umsi.utils.io import atomic_write, write_json

__all__ = ["CACHE_VERSION", "SaliencyCache", "build_cache", "cache_stem", "ensure_cache", "load_cache"]

log = logging.getLogger(__name__)

CACHE_VERSION = 1
Size = tuple[int, int]


def record_dtype(input_size: Size, output_size: Size) -> np.dtype:
    """The structured dtype of one cached item."""
    return np.dtype(
        [
            ("image", np.uint8, (*input_size, 3)),
            ("saliency", np.uint8, tuple(output_size)),
            ("source_hw", np.int32, (2,)),
            ("fixations", np.int64, (2,)),
        ]
    )


class SaliencyCache:
    """A built cache, opened lazily (and reopened after pickling) so every DataLoader worker maps the files
    itself instead of receiving a copy. ``built`` says whether :func:`ensure_cache` had to (re)build it."""

    def __init__(self, stem: Path, input_size: Size, output_size: Size, built: bool = False) -> None:
        self.stem = Path(stem)
        self.input_size, self.output_size = tuple(input_size), tuple(output_size)
        self.built = built
        self._records: np.ndarray | None = None
        self._points: np.ndarray | None = None

    @property
    def records(self) -> np.ndarray:
        """The (N,) structured record array, memory-mapped read-only."""
        if self._records is None:
            self._records = np.load(_paths(self.stem)["records"], mmap_mode="r")
        return self._records

    @property
    def points(self) -> np.ndarray:
        """All fixation points, (P, 2) float32 (x, y), memory-mapped read-only when non-empty."""
        if self._points is None:
            path = _paths(self.stem)["fixations"]
            try:
                self._points = np.load(path, mmap_mode="r")
            except ValueError:  # an empty array cannot be mapped on some NumPy versions
                self._points = np.load(path)
        return self._points

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, Size]:
        """(letterboxed image, letterboxed map, fixation points, source (H, W)) of item ``index``."""
        records = self.records
        start, stop = (int(v) for v in records["fixations"][index])
        height, width = (int(v) for v in records["source_hw"][index])
        return records["image"][index], records["saliency"][index], self.points[start:stop], (height, width)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_records": None, "_points": None}


def _paths(stem: Path) -> dict[str, Path]:
    return {
        "records": stem.with_name(stem.name + ".npy"),
        "fixations": stem.with_name(stem.name + ".fixations.npy"),
        "manifest": stem.with_name(stem.name + ".json"),
        "lock": stem.with_name(stem.name + ".lock"),
    }


def cache_stem(cache_dir: str | Path, name: str, items: Sequence[SaliencyItem], input_size: Size) -> Path:
    """Where a split's cache lives: the name, the input size and a digest of the source paths, so splits and
    sizes (SALICON at pretraining vs finetuning resolution, say) keep separate caches instead of evicting
    each other."""
    listing = json.dumps([_item_paths(item) for item in items]).encode()
    digest = hashlib.sha1(listing, usedforsecurity=False).hexdigest()[:12]
    return Path(cache_dir) / f"{name}-{input_size[0]}x{input_size[1]}-{digest}"


def _item_paths(item: SaliencyItem) -> list[str | None]:
    paths = (item.image, item.saliency, item.fixations)
    return [os.path.abspath(p) if p is not None else None for p in paths]


def _source(path: str | None) -> list[Any] | None:
    if path is None:
        return None
    stat = os.stat(path)
    return [path, stat.st_size, stat.st_mtime_ns]


def expected_manifest(name: str, items: Sequence[SaliencyItem], input_size: Size, output_size: Size) -> dict:
    """The manifest a valid cache of ``items`` must carry (stats every source file)."""
    return {
        "version": CACHE_VERSION,
        "name": name,
        "input_size": list(input_size),
        "output_size": list(output_size),
        "count": len(items),
        "sources": [[_source(p) for p in _item_paths(item)] for item in items],
    }


def load_cache(stem: Path, expected: dict) -> SaliencyCache | None:
    """The cache at ``stem`` when its manifest matches ``expected`` and its files are whole, else None."""
    paths = _paths(stem)
    try:
        manifest = json.loads(paths["manifest"].read_text())
        files = manifest.pop("files")
        if manifest != expected:
            return None
        if any(paths[key].stat().st_size != size for key, size in files.items()):
            return None
    except (OSError, ValueError, KeyError, AttributeError):
        return None
    return SaliencyCache(stem, tuple(expected["input_size"]), tuple(expected["output_size"]))


def build_cache(stem: Path, items: Sequence[SaliencyItem], expected: dict, progress: bool = True) -> SaliencyCache:
    """Decode and letterbox every item into the cache at ``stem`` (replacing whatever is there)."""
    paths = _paths(stem)
    paths["manifest"].unlink(missing_ok=True)  # from here on, the old files no longer look valid
    for leftover in stem.parent.glob(f".{stem.name}.*"):  # temporary files of a killed build
        leftover.unlink(missing_ok=True)
    input_size, output_size = tuple(expected["input_size"]), tuple(expected["output_size"])
    chunks: list[np.ndarray] = []

    def write_records(tmp: Path) -> None:
        dtype = record_dtype(input_size, output_size)
        records = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(len(items),))
        start = 0
        bar = tqdm(items, desc=f"caching {expected['name']}", unit="img", disable=not progress, dynamic_ncols=True)
        for index, item in enumerate(bar):
            image, saliency, points = _decode(item)
            records["image"][index] = letterbox(image, input_size)
            records["saliency"][index] = letterbox(saliency, output_size)
            records["source_hw"][index] = image.shape[:2]
            records["fixations"][index] = (start, start + len(points))
            chunks.append(points)
            start += len(points)
        records.flush()
        del records

    atomic_write(paths["records"], write_records)
    points = np.concatenate(chunks) if chunks else np.zeros((0, 2), np.float32)
    atomic_write(paths["fixations"], lambda tmp: np.save(tmp, points.astype(np.float32)))
    files = {key: paths[key].stat().st_size for key in ("records", "fixations")}
    write_json(paths["manifest"], {**expected, "files": files})
    return SaliencyCache(stem, input_size, output_size, built=True)


def _decode(item: SaliencyItem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image, map (resized to the image when their sizes differ, as the transform does) and fixation points."""
    image, saliency = read_image_bgr(item.image), read_map(item.saliency)
    if saliency.shape[:2] != image.shape[:2]:
        saliency = cv2.resize(saliency, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    points = read_fixations(item.fixations) if item.fixations else np.zeros((0, 2), np.float32)
    return image, saliency, np.asarray(points, dtype=np.float32).reshape(-1, 2)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive lock across processes (DDP ranks building the same split wait for the first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_cache(
    cache_dir: str | Path,
    name: str,
    items: Sequence[SaliencyItem],
    input_size: Size,
    output_size: Size,
    progress: bool = True,
) -> SaliencyCache:
    """The cache of ``items`` under ``cache_dir``: reused when its manifest still matches the source files and
    sizes, else (re)built with a progress bar."""
    input_size, output_size = (int(input_size[0]), int(input_size[1])), (int(output_size[0]), int(output_size[1]))
    stem = cache_stem(cache_dir, name, items, input_size)
    with _locked(_paths(stem)["lock"]):
        expected = expected_manifest(name, items, input_size, output_size)
        cache = load_cache(stem, expected)
        if cache is not None:
            return cache
        log.info("building the %s cache (%d items) in %s", name, len(items), stem.parent)
        return build_cache(stem, items, expected, progress)
