"""The dataset registry: every dataset layout is a reader registered by name (``conf/data/<name>.yaml``).

A reader finds a tree's items exactly as its owners ship it: image, map and/or fixations, class or domain
(``category``, by name), and split membership (``part``: ``train`` or ``val``). It never raises on a broken tree: it
returns every problem as an :class:`Issue` naming the file, which ``umsi-data-check data=<name>`` reports and
training turns into one :class:`~umsi.data.layouts.DatasetLayoutError` (:meth:`Found.raise_errors`).

Registered layouts (``../shared/docs/beyond-the-paper.md`` §1 describes them)::

    salicon   images/{train,val}, maps/{train,val}, fixations/{train,val}/*.mat        (unchanged readers)
    imp1k     imgs/<class>/*, maps/<class>/*, train_test_split_imp1k.json                (unchanged readers)
    gdi       gd_{train,val}/*.jpg, gd_imp_{train,val}/*.png                             (unchanged readers)
    ueyes     images/*, saliency_maps/{heatmaps,fixmaps}_{1s,3s,7s}/*, info.csv  (Zenodo 8010312)
    mit1003   ALLSTIMULI/<stem>.jpeg, ALLFIXATIONMAPS/<stem>_fixMap.jpg + <stem>_fixPts.jpg
    cat2000   Stimuli/<category>/*.jpg, FIXATIONMAPS/<category>/*.jpg, FIXATIONLOCS/<category>/*.mat (fixLocs)
    osie      data/stimuli/*.jpg, data/eye/fixations.mat (maps built from the fixations, Gaussian σ = data.sigma)
    folder    images/[<class>/]*, maps/[<class>/]* and/or fixations/[<class>/]*.{mat,npy,csv,png}

Splits (``data.split``): ``holdout`` (``data.val_fraction`` of each category held out with ``data.seed``; the
default where the owners ship no split), ``list`` (``data.split_list``: a file of validation/test names, one per
line, relative to the root or absolute); UEyes also ``info_csv`` (the official train/test flag, its default) and
``blocks`` (``data.test_blocks``, e.g. EyeFormer's [53, 54, 55]).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.io
from PIL import Image

from umsi.data import layouts
from umsi.data.fixations import FIXATION_SUFFIXES, fixation_map_from_points, read_fixations, write_map_png
from umsi.data.layouts import IMAGE_SUFFIXES, NATURAL_IMAGES, DatasetLayoutError, SaliencyItem

__all__ = [
    "DURATIONS",
    "LAYOUTS",
    "DatasetItem",
    "Found",
    "Issue",
    "find_items",
    "layout_names",
    "materialise",
    "register",
]

Severity = Literal["error", "warning"]
PARTS = ("train", "val")
DURATIONS = ("1s", "3s", "7s")
UEYES_SPLITS = ("info_csv", "blocks", "list", "holdout")
GENERIC_SPLITS = ("holdout", "list")
_UEYES_NAME = ("image", "image name", "new image name", "name", "image_name", "filename", "file", "img")
_UEYES_CATEGORY = ("category", "type", "ui type", "ui_type", "class")
_UEYES_BLOCK = ("block",)
_UEYES_SPLIT = ("split", "train/test", "set", "train_test", "subset", "is_test", "test")
_VAL_WORDS = {"test", "val", "valid", "validation", "1", "true", "yes"}


@dataclass(frozen=True)
class Issue:
    """One problem a reader found: ``severity``, the offending ``path``, what is wrong and how to fix it."""

    severity: Severity
    path: Path
    message: str
    fix: str


@dataclass(eq=False)
class DatasetItem:
    """One item of a registered dataset. ``saliency`` is None where the map is built from the fixations
    (:func:`materialise`); ``points`` holds (N, 2) 0-based (x, y) fixations read from a file shared by many images
    (OSIE's ``fixations.mat``); ``category`` is the class or domain name (None: unlabelled); ``part`` is
    ``train`` or ``val``."""

    image: Path
    saliency: Path | None
    fixations: Path | None
    category: str | None
    part: str
    points: np.ndarray | None = field(default=None, repr=False)
    key: str = ""  # the item's name within the dataset (relative image path without suffix)


@dataclass
class Found:
    """What a reader found under ``root``: the items, every issue, and where the split came from."""

    name: str
    root: Path
    items: list[DatasetItem] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    source: str = ""
    other_files: int = 0  # split / list / info files read

    def part(self, part: str) -> list[DatasetItem]:
        """The items of ``train`` or ``val``."""
        return [item for item in self.items if item.part == part]

    def error(self, path: Path, message: str, fix: str) -> None:
        self.issues.append(Issue("error", Path(path), message, fix))

    def warning(self, path: Path, message: str, fix: str) -> None:
        self.issues.append(Issue("warning", Path(path), message, fix))

    def errors(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.severity == "error"]

    def raise_errors(self, key: str = "data.root") -> None:
        """Raise :class:`DatasetLayoutError` naming the first error (and how many there are) if there is one."""
        errors = self.errors()
        if errors:
            first = errors[0]
            more = f" (and {len(errors) - 1} more; list them with umsi-data-check data={self.name})" * (len(errors) > 1)
            raise DatasetLayoutError(f"{self.name} ({key}): {first.path}: {first.message} — {first.fix}{more}")
        if not self.items:
            raise DatasetLayoutError(f"{self.name} ({key}): no items found under {self.root}")


Reader = Callable[[Path, Mapping[str, Any]], Found]
LAYOUTS: dict[str, Reader] = {}
"""layout name → reader ``(root, options) → Found``."""


def register(name: str) -> Callable[[Reader], Reader]:
    """Register a layout reader under ``name`` (``data.layout`` of a ``conf/data/<name>.yaml``)."""

    def decorate(reader: Reader) -> Reader:
        LAYOUTS[name] = reader
        return reader

    return decorate


def layout_names() -> list[str]:
    """Every registered layout, sorted."""
    return sorted(LAYOUTS)


def find_items(name: str, root: str | Path, options: Mapping[str, Any] | None = None) -> Found:
    """The items of the tree at ``root`` in layout ``name`` (``options``: the dataset's ``data`` config keys).
    Raises :class:`DatasetLayoutError` for an unknown layout or a missing root; other problems are issues."""
    if name not in LAYOUTS:
        raise DatasetLayoutError(f"unknown dataset layout {name!r}: registered layouts are {layout_names()}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"{name} root {root} does not exist: pass data.root=<folder in the {name} layout>")
    return LAYOUTS[name](root, dict(options or {}))


# ------------------------------------------------------------------------------------------------ helpers


def _files(folder: Path, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """The files of ``folder`` with one of ``suffixes`` (sorted; ``os.scandir``: no ``stat`` per file)."""
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        return sorted(Path(e.path) for e in entries if os.path.splitext(e.name)[1].lower() in suffixes and e.is_file())


def _subdirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        return sorted(Path(e.path) for e in entries if e.is_dir())


def _by_stem(files: Iterable[Path]) -> dict[str, Path]:
    return {p.stem: p for p in files}


def _need_dir(found: Found, path: Path, what: str) -> bool:
    if path.is_dir():
        return True
    found.error(path, f"{what} folder is missing", f"create it, or point data.root at the full {found.name} tree")
    return False


def _read_names(found: Found, path: Path) -> set[str] | None:
    """Stems listed in a split list (one per line, an image suffix or a folder prefix tolerated)."""
    if not path.is_file():
        found.error(path, "split list file does not exist", "set data.split_list to a file of names, one per line")
        return None
    found.other_files += 1
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        found.error(path, f"unreadable split list: {err}", "write one image name per line")
        return None
    names = set()
    for line in lines:
        name = line.strip()
        if name:
            suffix = Path(name).suffix.lower()
            names.add(Path(name).with_suffix("").as_posix() if suffix in IMAGE_SUFFIXES else name)
    return names


def _opt(options: Mapping[str, Any], key: str, default: Any) -> Any:
    """``options[key]``, or ``default`` when it is absent or None (an unresolved interpolation)."""
    value = options.get(key)
    return default if value is None else value


def _split_path(root: Path, options: Mapping[str, Any]) -> Path:
    value = options.get("split_list")
    if not value:
        return root / "val.txt"
    path = Path(str(value))
    return path if path.is_absolute() else root / path


def _assign_parts(found: Found, options: Mapping[str, Any], allowed: Sequence[str] = GENERIC_SPLITS) -> None:
    """Set every item's ``part`` by ``data.split`` (``holdout`` or ``list``; other splits are set by the reader)."""
    split = str(options.get("split") or "holdout")
    if split not in allowed:
        raise DatasetLayoutError(f"data.split={split!r} is not a {found.name} split: choose one of {list(allowed)}")
    if split == "list":
        path = _split_path(found.root, options)
        names = _read_names(found, path)
        if names is None:
            return
        keys = {item.key for item in found.items} | {item.image.stem for item in found.items}
        for name in sorted(names - keys):
            found.error(path, f"lists {name!r}, which is not an image of the tree", "add it or remove the line")
        for item in found.items:
            item.part = "val" if item.key in names or item.image.stem in names else "train"
        found.source = f"{path} (the validation/test names)"
        return
    fraction = float(_opt(options, "val_fraction", 0.1))
    seed = int(_opt(options, "seed", 0))
    if not 0.0 <= fraction < 1.0:
        raise DatasetLayoutError(f"data.val_fraction={fraction} must be in [0, 1)")
    rng = np.random.default_rng(seed)
    by_category: dict[str | None, list[DatasetItem]] = {}
    for item in found.items:
        by_category.setdefault(item.category, []).append(item)
    for category in sorted(by_category, key=str):
        items = by_category[category]
        held = min(round(len(items) * fraction), max(len(items) - 1, 0))
        chosen = set(rng.permutation(len(items))[:held].tolist())
        for i, item in enumerate(items):
            item.part = "val" if i in chosen else "train"
    found.source = f"{fraction:g} of each category held out with seed {seed} (data.split=holdout)"


# ------------------------------------------------------------------------------------- the existing three


def _from_saliency_items(
    items: Iterable[SaliencyItem], part: str, root: Path, names: Sequence[str] | None
) -> list[DatasetItem]:
    out = []
    for it in items:
        category = names[it.label] if names is not None and it.label >= 0 else None
        try:
            key = it.image.relative_to(root).with_suffix("").as_posix()
        except ValueError:
            key = it.image.stem
        out.append(DatasetItem(it.image, it.saliency, it.fixations, category, part, key=key))
    return out


def _wrap(found: Found, read: Callable[[], None]) -> Found:
    """Run an existing reader, turning the first layout error it raises into an issue."""
    try:
        read()
    except DatasetLayoutError as err:
        found.error(found.root, str(err), "see umsi-data-check's full report of this tree")
    return found


@register("salicon")
def read_salicon(root: Path, options: Mapping[str, Any]) -> Found:
    """SALICON 2017 through :func:`umsi.data.layouts.salicon_items`; every image is ``natural_images``."""
    found = Found("salicon", root, source="SALICON's train and val folders")

    def read() -> None:
        for part in PARTS:
            items = layouts.salicon_items(root, part, 0)
            found.items += _from_saliency_items(items, part, root, [NATURAL_IMAGES])

    return _wrap(found, read)


@register("imp1k")
def read_imp1k(root: Path, options: Mapping[str, Any]) -> Found:
    """Imp1k through :func:`umsi.data.layouts.imp1k_items` (the split file, else the seeded hold-out)."""
    split_file = options.get("split_file", layouts.IMP1K_SPLIT_FILE)
    val_per_class, seed = int(_opt(options, "val_per_class", 40)), int(_opt(options, "seed", 0))
    split_path = layouts.imp1k_split_file(root, split_file)
    source = str(split_path) if split_path else f"{val_per_class} images per class held out with seed {seed}"
    found = Found("imp1k", root, source=source)

    def read() -> None:
        names = layouts.class_names(root)
        train, val = layouts.imp1k_items(root, names, val_per_class, seed, split_file)
        found.items += _from_saliency_items(train, "train", root, names)
        found.items += _from_saliency_items(val, "val", root, names)

    return _wrap(found, read)


@register("gdi")
def read_gdi(root: Path, options: Mapping[str, Any]) -> Found:
    """GDI through :func:`umsi.data.layouts.gdi_items`: no classes, no fixations."""
    found = Found("gdi", root, source="GDI's gd_train and gd_val folders")

    def read() -> None:
        for part, split in zip(PARTS, layouts.GDI_SPLITS, strict=True):
            found.items += _from_saliency_items(layouts.gdi_items(root, split), part, root, None)

    return _wrap(found, read)


# ------------------------------------------------------------------------------------------------- UEyes


def _column(header: Sequence[str], wanted: Sequence[str]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    return next((lowered.index(w) for w in wanted if w in lowered), None)


def _ueyes_rows(found: Found, info: Path) -> list[dict[str, str]] | None:
    """info.csv rows as {name, category, block, split} (missing columns: '')."""
    try:
        with info.open(newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError) as err:
        found.error(info, f"unreadable info.csv: {err}", "restore info.csv from the Zenodo record")
        return None
    if not rows:
        found.error(info, "info.csv is empty", "restore info.csv from the Zenodo record")
        return None
    header, body = rows[0], rows[1:]
    columns = {
        key: _column(header, wanted)
        for key, wanted in (
            ("name", _UEYES_NAME),
            ("category", _UEYES_CATEGORY),
            ("block", _UEYES_BLOCK),
            ("split", _UEYES_SPLIT),
        )
    }
    if columns["name"] is None or columns["category"] is None:
        found.error(
            info,
            f"info.csv header {header} has no image-name or category column",
            f"name them one of {list(_UEYES_NAME)} and {list(_UEYES_CATEGORY)}",
        )
        return None
    out = []
    for row in body:
        out.append(
            {key: (row[col].strip() if col is not None and col < len(row) else "") for key, col in columns.items()}
            | {"split_column": header[columns["split"]].strip().lower() if columns["split"] is not None else ""}
        )
    return out


def _is_val(value: str, column: str) -> bool:
    value = value.strip().lower()
    if column in ("is_test", "test"):
        return value in _VAL_WORDS
    return value in {"test", "val", "valid", "validation"}


@register("ueyes")
def read_ueyes(root: Path, options: Mapping[str, Any]) -> Found:
    """UEyes (Zenodo 8010312): the map is ``heatmaps_<duration>``, the fixations ``fixmaps_<duration>`` (blobs →
    one point each), the category and split flag from ``info.csv``."""
    duration = str(_opt(options, "duration", "7s"))
    if duration not in DURATIONS:
        raise DatasetLayoutError(f"data.duration={duration!r}: UEyes ships {list(DURATIONS)}")
    split = str(options.get("split") or "info_csv")
    if split not in UEYES_SPLITS:
        raise DatasetLayoutError(f"data.split={split!r} is not a UEyes split: choose one of {list(UEYES_SPLITS)}")
    found = Found("ueyes", root)
    images_dir = root / "images"
    heat_dir = root / "saliency_maps" / f"heatmaps_{duration}"
    fix_dir = root / "saliency_maps" / f"fixmaps_{duration}"
    info = root / "info.csv"
    ok = _need_dir(found, images_dir, "UEyes images") & _need_dir(found, heat_dir, f"UEyes {duration} heatmaps")
    if not info.is_file():
        found.error(info, "info.csv is missing (it names each image's category and split)", "restore it from Zenodo")
        return found
    found.other_files += 1
    rows = _ueyes_rows(found, info)
    if rows is None or not ok:
        return found
    images = _by_stem(_files(images_dir))
    heatmaps = _by_stem(_files(heat_dir))
    fixmaps = _by_stem(_files(fix_dir)) if fix_dir.is_dir() else None
    if fixmaps is None:
        found.warning(fix_dir, "no fixmaps folder: items have no fixations (NSS/AUC left out)", "add the fixmaps")
    listed = set()
    blocks = {int(b) for b in options.get("test_blocks") or ()}
    for row in rows:
        stem = Path(row["name"]).stem
        listed.add(stem)
        image = images.get(stem)
        if image is None:
            found.error(info, f"lists {row['name']!r}, which is not in {images_dir}", "restore the image")
            continue
        heat = heatmaps.get(stem)
        if heat is None:
            found.error(image, f"image has no {duration} heatmap", f"add {heat_dir / stem}.png or remove the image")
            continue
        fix = None
        if fixmaps is not None:
            fix = fixmaps.get(stem)
            if fix is None:
                found.error(image, f"image has no {duration} fixmap", f"add {fix_dir / stem}.png or remove the image")
                continue
        if split == "blocks":
            try:
                is_val = int(float(row["block"])) in blocks
            except ValueError:
                found.error(info, f"{row['name']!r} has block {row['block']!r}, not a number", "fix info.csv")
                continue
        else:
            is_val = _is_val(row["split"], row["split_column"])
        found.items.append(DatasetItem(image, heat, fix, row["category"], "val" if is_val else "train", key=stem))
    for stem, image in images.items():
        if stem not in listed:
            found.warning(image, "image is not listed in info.csv (unused)", "add it to info.csv or remove it")
    if split == "info_csv":
        if not any(row["split_column"] for row in rows):
            found.error(
                info,
                "info.csv has no train/test column for data.split=info_csv",
                "use data.split=blocks or data.split=list",
            )
        found.source = f"{info} (the official train/test flag)"
    elif split == "blocks":
        if not blocks:
            raise DatasetLayoutError("data.split=blocks needs data.test_blocks, e.g. [53, 54, 55] (EyeFormer's)")
        found.source = f"test = blocks {sorted(blocks)} of {info} (data.split=blocks)"
    else:
        _assign_parts(found, options, ("list", "holdout"))
    return found


# ---------------------------------------------------------------------------------------- MIT1003, CAT2000


@register("mit1003")
def read_mit1003(root: Path, options: Mapping[str, Any]) -> Found:
    """MIT1003: ``ALLSTIMULI/<stem>.jpeg`` with ``ALLFIXATIONMAPS/<stem>_fixMap.jpg`` (the map) and
    ``<stem>_fixPts.jpg`` (binary fixation points); every image is ``natural_images``; no official split."""
    found = Found("mit1003", root)
    stimuli, maps_dir = root / "ALLSTIMULI", root / "ALLFIXATIONMAPS"
    if not (_need_dir(found, stimuli, "MIT1003 stimuli") & _need_dir(found, maps_dir, "MIT1003 fixation maps")):
        return found
    maps = _by_stem(_files(maps_dir))
    images = _files(stimuli)
    if not images:
        found.error(stimuli, "no images in the folder", "add the .jpeg stimuli")
    for image in images:
        fix_map, points = maps.get(f"{image.stem}_fixMap"), maps.get(f"{image.stem}_fixPts")
        if fix_map is None or points is None:
            missing = f"{image.stem}_fixMap.jpg" if fix_map is None else f"{image.stem}_fixPts.jpg"
            found.error(image, f"image has no {missing}", f"add {maps_dir / missing} or remove the image")
            continue
        found.items.append(DatasetItem(image, fix_map, points, NATURAL_IMAGES, "train", key=image.stem))
    _assign_parts(found, options)
    return found


@register("cat2000")
def read_cat2000(root: Path, options: Mapping[str, Any]) -> Found:
    """CAT2000 train: ``Stimuli/<category>/*.jpg``, ``FIXATIONMAPS/<category>/<stem>.jpg``,
    ``FIXATIONLOCS/<category>/<stem>.mat`` (``fixLocs``); the category is the domain."""
    found = Found("cat2000", root)
    stimuli, maps_dir, locs_dir = root / "Stimuli", root / "FIXATIONMAPS", root / "FIXATIONLOCS"
    if not (_need_dir(found, stimuli, "CAT2000 stimuli") & _need_dir(found, maps_dir, "CAT2000 fixation maps")):
        return found
    categories = _subdirs(stimuli)
    if not categories:
        found.error(stimuli, "no category sub-folders", "put the images under Stimuli/<category>/")
    for folder in categories:
        cat = folder.name
        maps = _by_stem(_files(maps_dir / cat))
        locs = _by_stem(_files(locs_dir / cat, (".mat",))) if locs_dir.is_dir() else None
        for image in _files(folder):
            saliency = maps.get(image.stem)
            if saliency is None:
                found.error(image, "image has no fixation map", f"add {maps_dir / cat / image.stem}.jpg")
                continue
            fix = None
            if locs is not None:
                fix = locs.get(image.stem)
                if fix is None:
                    found.error(image, "image has no fixLocs file", f"add {locs_dir / cat / image.stem}.mat")
                    continue
            found.items.append(DatasetItem(image, saliency, fix, cat, "train", key=f"{cat}/{image.stem}"))
    _assign_parts(found, options)
    return found


# ---------------------------------------------------------------------------------------------------- OSIE


def _one(value: Any) -> Any:
    """Unwrap the 1×1 cell and struct arrays ``scipy.io.loadmat`` wraps MATLAB values in."""
    while isinstance(value, np.ndarray) and value.size == 1 and (value.dtype == object or value.dtype.names):
        value = value.flat[0]
    return value


def _osie_points(found: Found, mat_path: Path, one_based: bool) -> dict[str, np.ndarray]:
    """image file name → (N, 2) 0-based (x, y) of all subjects, from OSIE's ``fixations.mat`` (a cell per image:
    a struct with ``img`` and ``subjects``, each subject a struct with ``fix_x`` and ``fix_y``)."""
    fix = "restore data/eye/fixations.mat from NUS-VIP/predicting-human-gaze-beyond-pixels"
    try:
        cells = scipy.io.loadmat(str(mat_path))["fixations"].flatten()
    except Exception as err:  # scipy raises many types on bad bytes; a missing key is a KeyError
        found.error(mat_path, f"not OSIE's fixations.mat ({type(err).__name__}: {err})", fix)
        return {}
    points: dict[str, np.ndarray] = {}
    for index, cell in enumerate(cells):
        try:
            entry = _one(cell)
            name = str(np.asarray(_one(entry["img"])).flatten()[0])
            chunks = []
            for subject in np.asarray(entry["subjects"]).flatten():
                subject = _one(subject)
                xs = np.asarray(subject["fix_x"], dtype=np.float64).flatten()
                ys = np.asarray(subject["fix_y"], dtype=np.float64).flatten()
                chunks.append(np.stack([xs, ys], axis=1))
        except (ValueError, TypeError, IndexError, KeyError) as err:
            found.error(mat_path, f"entry {index + 1} is malformed ({type(err).__name__}: {err})", fix)
            continue
        array = np.concatenate(chunks) if chunks else np.zeros((0, 2))
        points[name] = array - 1.0 if one_based else array
    return points


@register("osie")
def read_osie(root: Path, options: Mapping[str, Any]) -> Found:
    """OSIE: ``data/stimuli/*.jpg`` and ``data/eye/fixations.mat``; every image is ``natural_images``; maps are
    built from the fixations (:func:`materialise`, Gaussian σ = ``data.sigma``)."""
    found = Found("osie", root)
    stimuli, mat_path = root / "data" / "stimuli", root / "data" / "eye" / "fixations.mat"
    if not _need_dir(found, stimuli, "OSIE stimuli"):
        return found
    if not mat_path.is_file():
        found.error(mat_path, "fixations.mat is missing", "restore data/eye/fixations.mat")
        return found
    found.other_files += 1
    points = _osie_points(found, mat_path, bool(_opt(options, "one_based", True)))
    images = _files(stimuli)
    for image in images:
        if image.name not in points:
            found.error(image, "image has no entry in fixations.mat", f"restore {mat_path} or remove the image")
            continue
        found.items.append(DatasetItem(image, None, mat_path, NATURAL_IMAGES, "train", points[image.name], image.stem))
    names = {p.name for p in images}
    for name in sorted(set(points) - names):
        found.warning(mat_path, f"fixations of {name!r}, which is not in {stimuli} (unused)", "add the image")
    _assign_parts(found, options)
    return found


# ------------------------------------------------------------------------------------------ generic folder


@register("folder")
def read_folder(root: Path, options: Mapping[str, Any]) -> Found:
    """``images/`` plus ``maps/`` and/or ``fixations/`` with the same relative paths (stems); optional class
    sub-folders (``images/<class>/``: the category; else ``data.category``); fixations as ``.mat``, ``.npy``,
    CSV of x,y or a binary image. An item without a map gets one built from its fixations (``data.sigma``)."""
    found = Found("folder", root)
    images_dir, maps_dir, fix_dir = root / "images", root / "maps", root / "fixations"
    if not _need_dir(found, images_dir, "images"):
        return found
    if not maps_dir.is_dir() and not fix_dir.is_dir():
        found.error(root, "neither maps/ nor fixations/ exists", "add maps/ and/or fixations/ next to images/")
        return found
    default = options.get("category")
    groups = [(images_dir, None)] + [(sub, sub.name) for sub in _subdirs(images_dir)]
    for folder, cls in groups:
        relative = Path(cls) if cls else Path()
        maps = _by_stem(_files(maps_dir / relative)) if maps_dir.is_dir() else {}
        fixes = _by_stem(_files(fix_dir / relative, FIXATION_SUFFIXES)) if fix_dir.is_dir() else {}
        for image in _files(folder):
            saliency, fix = maps.get(image.stem), fixes.get(image.stem)
            if saliency is None and fix is None:
                found.error(
                    image,
                    "image has neither a map nor fixations",
                    f"add {maps_dir / relative / image.stem}.png or a fixation file, or remove the image",
                )
                continue
            key = (relative / image.stem).as_posix()
            found.items.append(DatasetItem(image, saliency, fix, cls or default, "train", key=key))
        images = {p.stem for p in _files(folder)}
        for stem, path in {**maps, **fixes}.items():
            if stem not in images:
                found.warning(path, "file has no image (unused)", "remove it or add the image")
    if not found.items and not found.errors():
        found.error(images_dir, "no images found", f"add images ({', '.join(IMAGE_SUFFIXES)})")
    _assign_parts(found, options)
    return found


# ------------------------------------------------------------------------------------------- materialise


def _image_hw(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        width, height = image.size
    return height, width


def materialise(
    found: Found,
    items: Sequence[DatasetItem],
    class_names: Sequence[str],
    derived_dir: str | Path | None,
    sigma: float = 19.0,
) -> list[SaliencyItem]:
    """Training/evaluation items of ``items``: labels by class name (-1 when the category is None or not in
    ``class_names``), and for every item without a map, the map built from its fixations
    (:func:`~umsi.data.fixations.fixation_map_from_points`, Gaussian ``sigma`` in image pixels) and, for fixations
    held in memory, an ``.npy`` of the points, both written once under
    ``derived_dir/<dataset>-sigma<σ>/`` (rewritten when the fixation source is newer)."""
    label_of = {name: i for i, name in enumerate(class_names)}
    out = []
    folder = None
    if derived_dir is not None:
        folder = Path(derived_dir) / f"{found.name}-sigma{sigma:g}"
    for item in items:
        saliency, fixations = item.saliency, item.fixations
        if saliency is None or item.points is not None:
            if folder is None:
                raise DatasetLayoutError(
                    f"{found.name} builds maps from fixations: set data.derived_dir to a writable folder"
                )
            name = item.key.replace("/", "__") or item.image.stem
            source_mtime = item.fixations.stat().st_mtime_ns if item.fixations is not None else 0
            if item.points is not None:
                fixations = folder / "fixations" / f"{name}.npy"
                if not fixations.is_file() or fixations.stat().st_mtime_ns < source_mtime:
                    pts = np.ascontiguousarray(item.points, dtype=np.float32)
                    fixations.parent.mkdir(parents=True, exist_ok=True)
                    tmp = fixations.with_suffix(".tmp.npy")
                    np.save(tmp, pts)
                    os.replace(tmp, fixations)
            if saliency is None:
                saliency = folder / "maps" / f"{name}.png"
                if not saliency.is_file() or saliency.stat().st_mtime_ns < source_mtime:
                    hw = _image_hw(item.image)
                    points = item.points if item.points is not None else read_fixations(item.fixations, hw)
                    saliency.parent.mkdir(parents=True, exist_ok=True)
                    write_map_png(saliency, fixation_map_from_points(points, hw, sigma))
        label = label_of.get(item.category, -1) if item.category is not None else -1
        out.append(SaliencyItem(item.image, saliency, fixations, label))
    return out
