"""Validate a dataset tree (what ``umsi-data-check data=<salicon|imp1k|gdi>`` runs, and training before it starts).

Every file of the layout (see :mod:`umsi.data.layouts`) is opened the way training opens it; each problem is
reported with its path, what is wrong and a one-line fix. Errors would stop or corrupt training (missing
pairs, undecodable or truncated files, all-zero maps, unreadable fixation files, class lists that disagree with
the folders); warnings are files that load but get converted (grayscale/RGBA/palette/16-bit/CMYK images, 16-bit
or colour maps, maps of another size, constant maps, fixations outside the image, which are dropped, and images
with no fixation inside them, which train on their map and are left out of NSS/AUC). Exit code: 0 clean or
warnings only, 1 any error, 2 bad configuration (missing root, unknown layout, missing class mapping file).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from tqdm import tqdm

from umsi.data.fixations import load_fixations
from umsi.data.layouts import (
    GDI_LIST_FILES,
    GDI_SPLITS,
    IMAGE_SUFFIXES,
    IMP1K_SPLIT_FILE,
    NATURAL_IMAGES,
    DatasetLayoutError,
    read_class_mapping,
    read_name_list,
)
from umsi.data.registry import LAYOUTS, find_items
from umsi.errors import ConfigError

__all__ = ["DatasetConfigError", "Problem", "check_dataset", "format_report", "layout_kind", "scan_dataset"]

Severity = Literal["error", "warning"]
KINDS = ("salicon", "imp1k", "gdi")
_KIND_BY_TARGET = {"SaliconDataModule": "salicon", "Imp1kDataModule": "imp1k", "GdiDataModule": "gdi"}
SALICON_SPLITS = ("train", "val")
_EXIF_ORIENTATION = 0x0112
_GRAY_MODES = {"1", "L", "LA", "La"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


class DatasetConfigError(ConfigError):
    """The configuration cannot be checked at all (missing root, unknown layout); the message names the key."""


@dataclass(frozen=True)
class Problem:
    """One finding: ``severity`` error|warning, the offending ``path``, what is wrong and how to fix it."""

    severity: Severity
    path: Path
    message: str
    fix: str

    def line(self) -> str:
        """``ERROR path: message — fix``."""
        return f"{self.severity.upper()} {self.path}: {self.message} — {self.fix}"


@dataclass
class _FileInfo:
    """What decoding a file told us: (width, height) as training sees it (None: undecodable)."""

    size: tuple[int, int] | None = None


@dataclass
class _Plan:
    """Files to inspect and the (image, map) pairs whose sizes are compared afterwards."""

    images: list[Path] = field(default_factory=list)
    maps: list[Path] = field(default_factory=list)
    fixations: list[Path] = field(default_factory=list)
    image_of: dict[Path, Path] = field(default_factory=dict)  # fixation file → its image
    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    other_files: int = 0  # split / list / mapping files read while planning


def _error(path: Path, message: str, fix: str) -> Problem:
    return Problem("error", Path(path), message, fix)


def _warning(path: Path, message: str, fix: str) -> Problem:
    return Problem("warning", Path(path), message, fix)


# ----------------------------------------------------------------------------------------------- layouts


def _files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _need_dir(path: Path, what: str, problems: list[Problem]) -> bool:
    if path.is_dir():
        return True
    problems.append(_error(path, f"{what} folder is missing", f"create {path} or point data.root at the full tree"))
    return False


def _pair(
    image_dir: Path, map_dir: Path, plan: _Plan, problems: list[Problem], fix_dir: Path | None = None
) -> dict[str, Path]:
    """Pair the images of ``image_dir`` with the maps of ``map_dir`` by stem (and ``.mat`` files of
    ``fix_dir`` when given); record the files and report unpaired ones. Returns the images by stem."""
    images = {p.stem: p for p in _files_in(image_dir)}
    maps = {p.stem: p for p in _files_in(map_dir)}
    plan.images += images.values()
    plan.maps += maps.values()
    if not images:
        problems.append(_error(image_dir, "no images in the folder", f"add images ({', '.join(IMAGE_SUFFIXES)})"))
    for stem, image in images.items():
        if stem in maps:
            plan.pairs.append((image, maps[stem]))
        else:
            problems.append(_error(image, "image has no map", f"add {map_dir / stem}.png or remove the image"))
    for stem, saliency in maps.items():
        if stem not in images:
            problems.append(
                _error(saliency, "map has no image", f"add the image {image_dir / stem}.jpg or remove the map")
            )
    if fix_dir is not None and fix_dir.is_dir():
        mats = {p.stem: p for p in sorted(fix_dir.glob("*.mat")) if p.is_file()}
        plan.fixations += mats.values()
        plan.image_of.update({mat: images[stem] for stem, mat in mats.items() if stem in images})
        for stem, image in images.items():
            if stem not in mats:
                problems.append(
                    _error(image, "image has no fixation file", f"add {fix_dir / stem}.mat or remove the image")
                )
        for stem, mat in mats.items():
            if stem not in images:
                problems.append(_warning(mat, "fixation file has no image (unused)", "remove it or add the image"))
    return images


def _plan_salicon(root: Path, problems: list[Problem]) -> _Plan:
    plan = _Plan()
    for split in SALICON_SPLITS:
        image_dir, map_dir = root / "images" / split, root / "maps" / split
        if _need_dir(image_dir, f"SALICON {split} images", problems) & _need_dir(
            map_dir, f"SALICON {split} maps", problems
        ):
            _pair(image_dir, map_dir, plan, problems, root / "fixations" / split)
    return plan


def _plan_imp1k(root: Path, problems: list[Problem], class_mapping: str | None, split_file: str | None) -> _Plan:
    plan = _Plan()
    imgs, maps = root / "imgs", root / "maps"
    if not (_need_dir(imgs, "Imp1k images", problems) & _need_dir(maps, "Imp1k maps", problems)):
        return plan
    classes = sorted(p.name for p in imgs.iterdir() if p.is_dir())
    if not classes:
        problems.append(_error(imgs, "no class sub-folders", "put images under imgs/<class>/"))
    images: dict[str, Path] = {}
    for cls in classes:
        if _need_dir(maps / cls, f"Imp1k {cls} maps", problems):
            images.update({f"{cls}/{stem}": p for stem, p in _pair(imgs / cls, maps / cls, plan, problems).items()})
        else:
            plan.images += _files_in(imgs / cls)
    for extra in sorted(p for p in maps.iterdir() if p.is_dir() and p.name not in classes):
        problems.append(_warning(extra, "map folder has no image folder (unused)", f"add {imgs / extra.name}/"))
    if class_mapping:
        plan.other_files += 1
        problems += _check_mapping(Path(class_mapping), imgs, classes)
    split_path = root / split_file if split_file else None
    if split_path is not None and split_path.is_file():
        plan.other_files += 1
        problems += _check_split_file(split_path, images)
    return plan


def _check_mapping(mapping: Path, imgs: Path, classes: list[str]) -> list[Problem]:
    """Class folders missing from the mapping file, and mapping entries without a folder."""
    try:
        names = read_class_mapping(mapping)
    except (DatasetLayoutError, OSError, UnicodeDecodeError) as err:
        return [_error(mapping, f"unreadable class mapping: {err}", "write one '<name> ... <index>' per line")]
    problems = [
        _error(imgs / cls, f"class folder is not in the class mapping {mapping.name}", f"add '{cls} <index>' to it")
        for cls in classes
        if cls not in names
    ]
    problems += [
        _error(mapping, f"class {name!r} has no folder {imgs / name}", "add the folder or remove the entry")
        for name in names
        if name != NATURAL_IMAGES and name not in classes
    ]
    if NATURAL_IMAGES not in names:
        problems.append(_error(mapping, f"no {NATURAL_IMAGES!r} class for SALICON", f"add '{NATURAL_IMAGES} <n>'"))
    return problems


def _check_split_file(split_path: Path, images: Mapping[str, Path]) -> list[Problem]:
    """Every name of the Imp1k ``[train, test]`` JSON split file must be an image under ``imgs/``."""
    fix = "regenerate the split file or delete it (a seeded hold-out is used instead)"
    try:
        lists = json.loads(split_path.read_text())
        train, test = lists
        names = [str(n) for n in [*train, *test]]
    except (ValueError, TypeError, OSError, UnicodeDecodeError) as err:
        return [_error(split_path, f"not a JSON list [train_paths, test_paths]: {err}", fix)]
    keys = {Path(n).with_suffix("").as_posix() for n in images}
    missing = [n for n in names if Path(n).with_suffix("").as_posix() not in keys]
    return [_error(split_path, f"lists {name!r}, which is not an image under imgs/", fix) for name in missing]


def _plan_gdi(root: Path, problems: list[Problem]) -> _Plan:
    plan = _Plan()
    for split in GDI_SPLITS:
        image_dir, map_dir = root / f"gd_{split}", root / f"gd_imp_{split}"
        if not (
            _need_dir(image_dir, f"GDI {split} images", problems) & _need_dir(map_dir, f"GDI {split} maps", problems)
        ):
            continue
        images = _pair(image_dir, map_dir, plan, problems)
        list_file = root / GDI_LIST_FILES[split]
        if list_file.is_file():
            plan.other_files += 1
            try:
                names = read_name_list(list_file)
            except (OSError, UnicodeDecodeError) as err:
                problems.append(_error(list_file, f"unreadable list file: {err}", "write one stem per line"))
                continue
            problems += [
                _error(list_file, f"lists {name!r}, which has no image in {image_dir}", "add it or remove the line")
                for name in names
                if name not in images
            ]
    return plan


def _plan_registered(kind: str, root: Path, data: Mapping[str, Any], problems: list[Problem]) -> _Plan:
    """The plan of a registered layout (:mod:`umsi.data.registry`): its reader's issues become problems, and every
    file it found (images, maps, per-image fixation files) is opened as training opens it."""
    options = (
        {key: OmegaConf.select(data, str(key), throw_on_resolution_failure=False) for key in data}
        if isinstance(data, DictConfig)
        else dict(data)
    )
    try:
        found = find_items(kind, root, options)
    except DatasetLayoutError as err:
        raise DatasetConfigError(str(err)) from None
    problems += [Problem(i.severity, i.path, i.message, i.fix) for i in found.issues]
    plan = _Plan(other_files=found.other_files)
    for item in found.items:
        plan.images.append(item.image)
        if item.saliency is not None:
            plan.maps.append(item.saliency)
            plan.pairs.append((item.image, item.saliency))
        if item.fixations is not None and item.points is None:
            plan.fixations.append(item.fixations)
            plan.image_of[item.fixations] = item.image
    return plan


# ------------------------------------------------------------------------------------------------ files


def _describe(err: BaseException, path: Path) -> str:
    """The exception's text without the path it repeats."""
    text = str(err).replace(f"{path}: ", "").replace(f"'{path}'", path.name) or type(err).__name__
    return text.splitlines()[0] if text.strip() else type(err).__name__


def _jpeg_lacks_eoi(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(handle.tell() - 1024, 0))
        tail = handle.read().rstrip(b"\x00\r\n\t ")
    return not tail.endswith(b"\xff\xd9")


def _open_with_pillow(path: Path) -> tuple[str, tuple[int, int], int | None, str]:
    """(mode, (width, height), EXIF orientation, format) after fully decoding the first frame."""
    with Image.open(path) as image:
        orientation = image.getexif().get(_EXIF_ORIENTATION) if hasattr(image, "getexif") else None
        image.load()
        return image.mode, image.size, orientation, image.format or ""


def _decode(path: Path, problems: list[Problem], what: str) -> tuple[str | None, _FileInfo]:
    """Decode ``path`` with Pillow (falling back to OpenCV); report undecodable and truncated files."""
    try:
        mode, size, orientation, fmt = _open_with_pillow(path)
    except Exception as err:
        text = _describe(err, path)
        if "truncated" in text:
            problems.append(_error(path, f"truncated {what}: {text}", "re-download or re-export the file"))
            return None, _FileInfo()
        decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if decoded is None:
            fix = "replace it with a valid image, or remove it (and its pair)"
            problems.append(_error(path, f"{what} cannot be decoded by Pillow or OpenCV ({text})", fix))
            return None, _FileInfo()
        return None, _FileInfo(size=(decoded.shape[1], decoded.shape[0]))
    if fmt == "JPEG" and _jpeg_lacks_eoi(path):
        problems.append(_error(path, f"{what} has no JPEG end-of-image marker (truncated)", "re-download it"))
    if orientation in (5, 6, 7, 8):
        size = (size[1], size[0])
        problems.append(
            _warning(
                path,
                f"EXIF orientation {orientation}: OpenCV rotates the {what} to {size[0]}×{size[1]}",
                "make sure its pair is in the rotated frame, or save the pixels upright",
            )
        )
    return mode, _FileInfo(size=size)


def _image_mode_warning(path: Path, mode: str) -> Problem | None:
    fix = "none needed; convert to 8-bit RGB to silence"
    if mode in _GRAY_MODES:
        return _warning(path, f"grayscale image ({mode}): replicated to 3 channels", fix)
    if mode in ("RGBA", "RGBa", "PA"):
        return _warning(path, f"image with alpha ({mode}): alpha is dropped, not composited", fix)
    if mode == "P":
        return _warning(path, "palette image (P): converted to RGB", fix)
    if mode in _SIXTEEN_BIT_MODES:
        return _warning(path, f"16/32-bit image ({mode}): scaled down to 8 bits", fix)
    if mode == "CMYK":
        return _warning(path, "CMYK image: converted to RGB (colours may shift)", fix)
    if mode not in ("RGB", "YCbCr"):
        return _warning(path, f"unusual image mode {mode}: converted to 8-bit BGR", fix)
    return None


def _check_image(path: Path, problems: list[Problem]) -> _FileInfo:
    mode, info = _decode(path, problems, "image")
    if mode is not None and (warning := _image_mode_warning(path, mode)) is not None:
        problems.append(warning)
    return info


def _read_map_pixels(path: Path) -> np.ndarray | None:
    pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if pixels is not None:
        return pixels
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L"))
    except Exception:
        return None


def _check_map(path: Path, problems: list[Problem]) -> _FileInfo:
    mode, info = _decode(path, problems, "map")
    if info.size is None:
        return info
    fix = "none needed; save 8-bit grayscale maps to silence"
    if mode in _SIXTEEN_BIT_MODES:
        problems.append(_warning(path, f"16-bit map ({mode}): reduced to 8 bits (value / 256)", fix))
    elif mode is not None and mode not in _GRAY_MODES:
        problems.append(_warning(path, f"{mode} map: converted to grayscale (0.299 R + 0.587 G + 0.114 B)", fix))
    pixels = _read_map_pixels(path)
    if pixels is None:
        problems.append(_error(path, "map cannot be read as grayscale by OpenCV", "re-save it as an 8-bit PNG"))
        return info
    low, high = int(pixels.min()), int(pixels.max())
    if high == 0:
        problems.append(_error(path, "map is all zero (after 8-bit conversion)", "regenerate the map"))
    elif low == high:
        problems.append(_warning(path, f"map is constant ({high}): no saliency signal", "regenerate the map"))
    return info


def _check_fixations(path: Path, problems: list[Problem], image_size: tuple[int, int] | None = None) -> None:
    """Read a ``.mat`` file as training does, against its image's (width, height) when known (else the file's
    ``resolution``): an unreadable file is an error; points outside the image (dropped, the count per file) and
    a file with no point inside the image are warnings."""
    fix = (
        "re-download the SALICON 2017 fixation file (a 'gaze' struct array with 'fixations')"
        if path.suffix.lower() == ".mat"
        else "re-export the fixation file (see umsi.data.fixations for the formats)"
    )
    image_hw = (image_size[1], image_size[0]) if image_size is not None else None
    try:
        fixations = load_fixations(path, image_hw)
    except Exception as err:
        problems.append(_error(path, f"unusable fixation file: {_describe(err, path)}", fix))
        return
    resolution, frame = fixations.resolution, fixations.frame_hw
    if image_hw is not None and resolution is not None and resolution != image_hw:
        problems.append(
            _warning(
                path,
                f"'resolution' says {resolution[1]}×{resolution[0]} but the image is {image_hw[1]}×{image_hw[0]}: "
                "fixations are kept or dropped by the image's size",
                "check that the file belongs to this image and was recorded at its size",
            )
        )
    image = f"the {frame[1]}×{frame[0]} image" if frame is not None else "the image"
    counts = f"{fixations.dropped} of {fixations.total} fixations"
    if len(fixations.points) == 0:
        problems.append(
            _warning(
                path,
                f"no fixation inside {image} ({counts} outside): it trains on its map and is left out of "
                "NSS/AUC/sAUC/IG",
                "none needed if nobody looked at it; otherwise re-export the file with 1-based [x, y] in the image",
            )
        )
    elif fixations.dropped:
        problems.append(
            _warning(
                path,
                f"{counts} lie outside {image} and are dropped (the MIT/SALICON rule: 0 <= x < width, "
                "0 <= y < height, 0-based)",
                "none needed; if many are dropped, check that the points are 1-based [x, y] in image pixels",
            )
        )


def _size_warning(image: Path, saliency: Path, image_size: tuple[int, int], map_size: tuple[int, int]) -> Problem:
    (iw, ih), (mw, mh) = image_size, map_size
    ratio = f"×{iw / mw:.3g} in width, ×{ih / mh:.3g} in height"
    distort = "" if abs(iw / mw - ih / mh) < 1e-3 else "; the aspect ratio differs, so the map is distorted"
    return _warning(
        saliency,
        f"map is {mw}×{mh} but its image {image.name} is {iw}×{ih}: resized {ratio}{distort}",
        "none needed if it is the same content; otherwise regenerate the map at the image size",
    )


# ---------------------------------------------------------------------------------------------- driver


def layout_kind(data: Mapping[str, Any] | DictConfig) -> str:
    """The layout of a ``data`` config: its ``layout`` (a registered layout, :mod:`umsi.data.registry`), ``kind``
    or ``_target_`` (``salicon``, ``imp1k``, ``gdi``); else ``""``."""
    target = str(data.get("_target_") or "")
    return str(data.get("layout") or data.get("kind") or _KIND_BY_TARGET.get(target.rsplit(".", 1)[-1], ""))


def _resolve(data: Mapping[str, Any] | DictConfig, root: str | Path | None) -> tuple[str, Path, dict[str, Any]]:
    """(kind, root, options) from a ``data`` config (``_target_`` or ``kind``); ``root`` overrides ``data.root``."""
    kind = layout_kind(data)
    options = {"class_mapping": data.get("class_mapping"), "split_file": data.get("split_file", IMP1K_SPLIT_FILE)}
    root = root if root is not None else data.get("root")
    if kind not in KINDS and kind not in LAYOUTS:
        raise DatasetConfigError(
            f"unknown dataset layout {kind!r}: use data=<one of {sorted({*KINDS, *LAYOUTS})}> or data=mix"
        )
    if not root:
        raise DatasetConfigError("data.root is not set: pass data.root=<dataset folder>")
    root = Path(str(root))
    if not root.is_dir():
        raise DatasetConfigError(
            f"data.root={root} does not exist: pass data.root=<folder> or paths.datasets_dir=<parent of {kind}/>"
        )
    mapping = options.get("class_mapping")
    if mapping and not Path(str(mapping)).is_file():
        raise DatasetConfigError(f"data.class_mapping={mapping} does not exist: fix the path or set it to null")
    return kind, root, options


def scan_dataset(
    data: Mapping[str, Any] | DictConfig | str,
    root: str | Path | None = None,
    *,
    class_mapping: str | None = None,
    split_file: str | None = IMP1K_SPLIT_FILE,
    progress: bool = False,
) -> tuple[list[Problem], int]:
    """(problems, number of files checked) for a ``data`` config (its ``_target_`` gives the layout) or a
    layout name (``salicon``/``imp1k``/``gdi``) with ``root``. Raises :class:`DatasetConfigError` when the root
    or the class mapping file does not exist; everything else is reported as a :class:`Problem`."""
    if isinstance(data, str):
        data = {"kind": data, "class_mapping": class_mapping, "split_file": split_file}
    if root is None and data.get("datasets") is not None:  # data=mix: every dataset of the list, each by its layout
        problems, files = [], 0
        for entry in data["datasets"]:
            entry = dict(entry)
            layout = {"layout": entry.get("layout") or entry.get("name"), "split_file": IMP1K_SPLIT_FILE, **entry}
            found, checked = scan_dataset(layout, entry.get("root"), progress=progress)
            problems, files = problems + found, files + checked
        return problems, files
    kind, root_path, options = _resolve(data, root)
    problems: list[Problem] = []
    if kind not in KINDS:
        plan = _plan_registered(kind, root_path, data, problems)
    elif kind == "salicon":
        plan = _plan_salicon(root_path, problems)
    elif kind == "imp1k":
        plan = _plan_imp1k(root_path, problems, options["class_mapping"], options["split_file"])
    else:
        plan = _plan_gdi(root_path, problems)
    infos: dict[Path, _FileInfo] = {}

    def check_fixations(path: Path, found: list[Problem]) -> None:  # after the images: needs their decoded size
        _check_fixations(path, found, infos.get(plan.image_of.get(path), _FileInfo()).size)

    jobs: list[tuple[Path, Callable[[Path, list[Problem]], Any]]] = [
        *((p, _check_image) for p in plan.images),
        *((p, _check_map) for p in plan.maps),
        *((p, check_fixations) for p in plan.fixations),
    ]
    for path, check in tqdm(jobs, desc=f"checking {kind}", unit="file", disable=not progress):
        result = check(path, problems)
        if isinstance(result, _FileInfo):
            infos[path] = result
    for image, saliency in plan.pairs:
        image_size, map_size = infos[image].size, infos[saliency].size
        if image_size is not None and map_size is not None and image_size != map_size:
            problems.append(_size_warning(image, saliency, image_size, map_size))
    return problems, len(jobs) + plan.other_files


def check_dataset(
    data: Mapping[str, Any] | DictConfig | str,
    root: str | Path | None = None,
    *,
    class_mapping: str | None = None,
    split_file: str | None = IMP1K_SPLIT_FILE,
    progress: bool = False,
) -> list[Problem]:
    """The problems of a dataset tree (see :func:`scan_dataset`), errors first."""
    problems, _ = scan_dataset(data, root, class_mapping=class_mapping, split_file=split_file, progress=progress)
    return sorted(problems, key=lambda p: p.severity != "error")


def format_report(problems: Iterable[Problem], files_checked: int, max_shown: int | None = 50) -> str:
    """Problems grouped by severity (at most ``max_shown`` of each), then the ``N files checked`` summary."""
    problems = list(problems)
    lines = []
    for severity, title in (("error", "Errors"), ("warning", "Warnings")):
        group = [p for p in problems if p.severity == severity]
        if not group:
            continue
        shown = group if max_shown is None or max_shown < 0 else group[:max_shown]
        lines.append(f"{title} ({len(group)}):")
        lines += [f"  {p.line()}" for p in shown]
        if len(shown) < len(group):
            lines.append(f"  … {len(group) - len(shown)} more {severity}s (raise max_problems_shown to see them)")
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    lines.append(
        f"{files_checked} files checked: {errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
    )
    return "\n".join(lines)
