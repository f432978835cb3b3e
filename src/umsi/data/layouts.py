"""File discovery for the real dataset layouts: pairing images with maps and fixations, class labels, splits.

SALICON 2017 (LSUN'17 release)::

    root/images/{train,val}/COCO_*.jpg
    root/maps/{train,val}/COCO_*.png          grayscale saliency maps
    root/fixations/{train,val}/COCO_*.mat     ``gaze`` struct array, one entry per subject, fields
                                              ``location``, ``timestamp``, ``fixations`` ([x, y], 1-based)

Imp1k::

    root/imgs/<class>/<name>.{png,jpg}
    root/maps/<class>/<name>.png              same relative path (stem) as the image
    root/train_test_split_imp1k.json          optional: [train relative paths, test relative paths]

GDI (graphic design importance, Bylinskii et al., UIST'17; no class labels, no fixations)::

    root/gd_train/<stem>.jpg                  862 designs in the real set
    root/gd_imp_train/<stem>.png              8-bit grayscale importance map, same size as the image
    root/gd_val/<stem>.jpg, root/gd_imp_val/<stem>.png     216 designs
    root/train.txt, root/valid.txt            optional: the split's stems, one per line, without extension
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from umsi.errors import DataFileError, UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
NATURAL_IMAGES = "natural_images"
IMP1K_SPLIT_FILE = "train_test_split_imp1k.json"
GDI_SPLITS = ("train", "val")
GDI_LIST_FILES = {"train": "train.txt", "val": "valid.txt"}
NO_LABEL = -1


class DatasetLayoutError(UserError, ValueError):
    """A dataset folder does not have the expected layout; the message names the path and the fix."""

    kind = "dataset error"


@dataclass(frozen=True)
class SaliencyItem:
    """One training/evaluation item: image and map paths, optional fixation file, class index."""

    image: Path
    saliency: Path
    fixations: Path | None
    label: int


def _images_in(folder: Path) -> list[Path]:
    """The image files of ``folder``, sorted by name (``os.scandir``: no ``stat`` per file, no ``Path`` sorting;
    15,000 SALICON items are found in well under a second, ``make bench``'s discovery part)."""
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES and e.is_file())
    return [folder / name for name in names]


def _require_dir(path: Path, what: str, key: str) -> Path:
    if not path.is_dir():
        raise DatasetLayoutError(
            f"{what} folder {path} does not exist. Point {key} at a dataset in the documented layout "
            "(see data/README.md), or generate the synthetic one with `umsi-make-synthetic --out data/synthetic`."
        )
    return path


def _index_by_stem(files: Sequence[Path]) -> dict[str, Path]:
    return {p.stem: p for p in files}


def _map_of(image: Path, maps: dict[str, Path], maps_dir: Path, dataset: str, listed_in: Path | None = None) -> Path:
    """The map of ``image`` (same stem, any image suffix) from ``maps`` (stem → path) of ``maps_dir``; the
    error names the image, the expected map and, when given, the list file that named the image."""
    if image.stem not in maps:
        listed = f" (listed in {listed_in})" if listed_in is not None else ""
        fix = "; add the map or remove the name from the list" if listed_in is not None else ""
        raise DatasetLayoutError(f"{dataset} image {image}{listed} has no map {maps_dir / image.stem}.png{fix}")
    return maps[image.stem]


def _skipped(item: SaliencyItem, skip: Collection[Path]) -> bool:
    if not skip:
        return False
    return item.image in skip or item.saliency in skip or (item.fixations is not None and item.fixations in skip)


def salicon_items(
    root: str | Path, split: str, label: int, key: str = "data.root", skip: Collection[Path] = frozenset()
) -> list[SaliencyItem]:
    """Items of one SALICON split, paired by file stem. Fixations are optional as a whole folder, but when
    the folder exists every image needs its ``.mat`` file. Items with a file in ``skip`` (images, maps or
    fixation files the data check rejected) are left out, and so are their missing partners' errors."""
    root = Path(root)
    images = _images_in(_require_dir(root / "images" / split, f"SALICON {split} images", key))
    maps = _index_by_stem(_images_in(_require_dir(root / "maps" / split, f"SALICON {split} maps", key)))
    fix_dir = root / "fixations" / split
    fixations = {p.stem: p for p in fix_dir.glob("*.mat")} if fix_dir.is_dir() else None
    items = []
    for image in (p for p in images if not skip or p not in skip):
        saliency = _map_of(image, maps, root / "maps" / split, "SALICON")
        fix = None
        if fixations is not None:
            if image.stem not in fixations:
                raise DatasetLayoutError(f"SALICON image {image} has no fixation file {fix_dir / image.stem}.mat")
            fix = fixations[image.stem]
        item = SaliencyItem(image, saliency, fix, label)
        if not _skipped(item, skip):
            items.append(item)
    if not items:
        raise DatasetLayoutError(f"no images found in {root / 'images' / split} ({key})")
    return items


def inside_image(points_xy: np.ndarray, hw: tuple[float, float]) -> np.ndarray:
    """(N,) bool: which 0-based (x, y) points lie inside an image of ``hw`` = (height, width) pixels.

    The one rule for fixations outside the image, everywhere (data check, training targets, NSS/AUC/sAUC and the
    sAUC negatives): keep 0 <= x < width and 0 <= y < height, drop the rest (NaN and ±inf included). It is the
    MIT benchmark's / SALICON API's rule, as pysaliency's ``remove_out_of_stimulus_fixations`` writes it.
    """
    points = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    height, width = hw
    with np.errstate(invalid="ignore"):
        return (points[:, 0] >= 0) & (points[:, 1] >= 0) & (points[:, 0] < width) & (points[:, 1] < height)


@dataclass(frozen=True)
class SaliconFixations:
    """The fixations of one SALICON 2017 ``.mat`` file.

    ``points``: (N, 2) float32 0-based (x, y) inside ``frame_hw``; ``total``: points in the file; ``frame_hw``:
    (height, width) they were checked against (the image's own size when given, else the file's ``resolution``;
    None when neither is known, and then only negative or non-finite points are dropped); ``resolution``: the
    file's ``resolution`` field as (height, width), None when absent.
    """

    points: np.ndarray
    total: int
    frame_hw: tuple[int, int] | None
    resolution: tuple[int, int] | None

    @property
    def dropped(self) -> int:
        """How many points of the file lie outside the image and were dropped."""
        return self.total - len(self.points)


def load_salicon_fixations(
    path: str | Path, image_hw: tuple[int, int] | None = None, field: str = "fixations"
) -> SaliconFixations:
    """Read a SALICON 2017 ``.mat`` file: every subject's ``field`` points (``fixations``: inferred fixations,
    ``location``: raw mouse samples), converted once from the file's 1-based [x, y] to 0-based (x, y), then the
    points outside the image dropped (:func:`inside_image`). The image is ``image_hw`` = (height, width) of the
    decoded image when given, else the file's own ``resolution`` field when present.

    Raises :class:`~umsi.errors.DataFileError` naming the file for a file that is not such a ``.mat`` file,
    whatever its bytes.
    """
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as err:  # scipy raises many types (ValueError, TypeError, MatReadError …) on bad bytes
        raise DataFileError(f"{path}: not a readable .mat file ({type(err).__name__}: {err})") from None
    if "gaze" not in mat:
        raise DataFileError(f"{path}: no 'gaze' variable (expected a SALICON 2017 fixation file)")
    gaze = mat["gaze"]
    if gaze.dtype.names is None or field not in gaze.dtype.names:
        raise DataFileError(f"{path}: 'gaze' has no field {field!r} (fields: {gaze.dtype.names})")
    try:
        chunks = [np.asarray(entry[field], dtype=np.float64).reshape(-1, 2) for entry in gaze.flat]
        points = np.concatenate(chunks) if chunks else np.zeros((0, 2))
        points = points - 1.0  # 1-based [x, y] → 0-based, here and nowhere else
        resolution = None
        if "resolution" in mat:
            height, width = np.asarray(mat["resolution"], dtype=np.float64).reshape(-1)[:2]
            resolution = (int(height), int(width))
    except (ValueError, TypeError, IndexError) as err:
        raise DataFileError(f"{path}: malformed fixations ({err})") from None
    frame_hw = (int(image_hw[0]), int(image_hw[1])) if image_hw is not None else resolution
    keep = inside_image(points, frame_hw) if frame_hw is not None else inside_image(points, (np.inf, np.inf))
    return SaliconFixations(points[keep].astype(np.float32), len(points), frame_hw, resolution)


def read_salicon_fixations(
    path: str | Path, field: str = "fixations", image_hw: tuple[int, int] | None = None
) -> np.ndarray:
    """(N, 2) float32 0-based (x, y) fixations of all subjects in a SALICON 2017 ``.mat`` file, without the points
    outside the image (``image_hw`` = (height, width), else the file's ``resolution``); see
    :func:`load_salicon_fixations`, which also says how many were dropped."""
    return load_salicon_fixations(path, image_hw, field).points


def imp1k_classes(root: str | Path, key: str = "data.root") -> list[str]:
    """Design class names = the sub-folders of ``root/imgs``, sorted."""
    imgs = _require_dir(Path(root) / "imgs", "Imp1k images", key)
    classes = sorted(p.name for p in imgs.iterdir() if p.is_dir())
    if not classes:
        raise DatasetLayoutError(f"{imgs} has no class sub-folders ({key})")
    return classes


def read_class_mapping(path: str | Path) -> list[str]:
    """Class names ordered by index from a mapping file: one class per line, first token = name, last token =
    integer index (the official ``label_mapping_file`` format)."""
    pairs = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            pairs.append((int(tokens[-1]), tokens[0]))
        except ValueError as err:
            raise DatasetLayoutError(f"{path}:{lineno}: expected '<name> ... <index>', got {line!r}") from err
    indices = sorted(i for i, _ in pairs)
    if indices != list(range(len(pairs))):
        raise DatasetLayoutError(f"{path}: indices must be 0..{len(pairs) - 1} without gaps, got {indices}")
    return [name for _, name in sorted(pairs)]


def class_names(
    imp1k_root: str | Path | None, mapping_file: str | Path | None = None, num_classes: int | None = None
) -> list[str]:
    """The class list: from ``mapping_file`` when given, else the Imp1k folders sorted, then ``natural_images``
    last. ``num_classes`` (the model's) is checked against it."""
    if mapping_file:
        names = read_class_mapping(mapping_file)
    elif imp1k_root is not None:
        names = [c for c in imp1k_classes(imp1k_root) if c != NATURAL_IMAGES] + [NATURAL_IMAGES]
    else:
        raise DatasetLayoutError("no class list: give data.class_mapping or an Imp1k root")
    if NATURAL_IMAGES not in names:
        raise DatasetLayoutError(f"the class list {names} has no '{NATURAL_IMAGES}' class for SALICON images")
    if num_classes is not None and num_classes != len(names):
        raise DatasetLayoutError(
            f"model.num_classes={num_classes} but the data has {len(names)} classes {names}; "
            f"set model.num_classes={len(names)}"
        )
    return names


def imp1k_split_file(root: str | Path, split_file: str | None = IMP1K_SPLIT_FILE) -> Path | None:
    """``root/<split_file>`` when it exists (the split then comes from it), else ``None`` (a seeded hold-out)."""
    path = Path(root) / split_file if split_file else None
    return path if path is not None and path.is_file() else None


def _imp1k_by_class(
    root: Path, names: Sequence[str], key: str, skip: Collection[Path] = frozenset()
) -> tuple[dict[str, list[SaliencyItem]], set[str]]:
    """Every Imp1k item by class folder (sorted), and the ``<class>/<stem>`` of those left out for ``skip``."""
    label_of = {name: i for i, name in enumerate(names)}
    by_class: dict[str, list[SaliencyItem]] = {}
    skipped: set[str] = set()
    for cls in imp1k_classes(root, key):
        if cls not in label_of:
            raise DatasetLayoutError(f"Imp1k class folder {root / 'imgs' / cls} is not in the class list {names}")
        maps = _index_by_stem(_images_in(_require_dir(root / "maps" / cls, f"Imp1k {cls} maps", key)))
        items = []
        for image in _images_in(root / "imgs" / cls):
            if image in skip or maps.get(image.stem) in skip:
                skipped.add(f"{cls}/{image.stem}")
                continue
            if image.stem not in maps:
                raise DatasetLayoutError(f"Imp1k image {image} has no map in {root / 'maps' / cls}")
            items.append(SaliencyItem(image, maps[image.stem], None, label_of[cls]))
        by_class[cls] = items
    return by_class, skipped


def imp1k_items(
    root: str | Path,
    names: Sequence[str],
    val_per_class: int = 40,
    seed: int = 0,
    split_file: str | None = IMP1K_SPLIT_FILE,
    key: str = "data.root",
    skip: Collection[Path] = frozenset(),
) -> tuple[list[SaliencyItem], list[SaliencyItem]]:
    """(train, val) Imp1k items. Uses ``root/<split_file>`` when it exists, otherwise holds out
    ``val_per_class`` images of each class chosen with ``seed``. Items with a file in ``skip`` are left out
    (also from the split file's lists)."""
    root = Path(root)
    by_class, skipped = _imp1k_by_class(root, names, key, skip)
    split_path = imp1k_split_file(root, split_file)
    if split_path is not None:
        return _split_from_file(root, split_path, by_class, skipped)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for items in by_class.values():
        order = rng.permutation(len(items))
        held = set(order[: min(val_per_class, max(len(items) - 1, 0))].tolist())
        val += [it for i, it in enumerate(items) if i in held]
        train += [it for i, it in enumerate(items) if i not in held]
    return train, val


def imp1k_named_items(
    root: str | Path, names: Sequence[str], images: Sequence[str], listed_in: Path, key: str = "data.root"
) -> list[SaliencyItem]:
    """The Imp1k items of ``images`` (paths relative to ``root/imgs``, as in a split file or a run's recorded
    split ``listed_in``), in that order, labelled with the class list ``names``. An image that is not under
    ``root/imgs`` is a :class:`DatasetLayoutError` naming ``listed_in``."""
    root = Path(root)
    by_class, _ = _imp1k_by_class(root, names, key)
    return _pick(root, listed_in, _by_relative_name(root, by_class), images)


def _by_relative_name(root: Path, by_class: dict[str, list[SaliencyItem]]) -> dict[str, SaliencyItem]:
    return {
        it.image.relative_to(root / "imgs").with_suffix("").as_posix(): it
        for items in by_class.values()
        for it in items
    }


def _pick(
    root: Path, listed_in: Path, by_rel: dict[str, SaliencyItem], names: Sequence[str], skipped: Collection[str] = ()
) -> list[SaliencyItem]:
    keys = [key for key in (Path(n).with_suffix("").as_posix() for n in names) if key not in skipped]
    missing = [key for key in keys if key not in by_rel]
    if missing:
        raise DatasetLayoutError(f"{listed_in} lists {len(missing)} images not under {root / 'imgs'}: {missing[:3]}")
    return [by_rel[key] for key in keys]


def _split_from_file(
    root: Path, split_path: Path, by_class: dict[str, list[SaliencyItem]], skipped: Collection[str] = ()
) -> tuple[list[SaliencyItem], list[SaliencyItem]]:
    try:
        train_names, val_names = json.loads(split_path.read_text())
    except (ValueError, TypeError) as err:
        raise DatasetLayoutError(f"{split_path}: expected a JSON list [train_paths, test_paths]: {err}") from err
    by_rel = _by_relative_name(root, by_class)
    return _pick(root, split_path, by_rel, train_names, skipped), _pick(root, split_path, by_rel, val_names, skipped)


def read_name_list(path: str | Path) -> list[str]:
    """Stems listed in a GDI split file (``train.txt`` / ``valid.txt``): one per line, blank lines skipped, an
    image suffix (``.jpg``…) tolerated and dropped."""
    names = []
    for line in Path(path).read_text().splitlines():
        name = line.strip()
        if name:
            names.append(Path(name).stem if Path(name).suffix.lower() in IMAGE_SUFFIXES else name)
    return names


def _gdi_split_items(root: Path, split: str, key: str) -> list[SaliencyItem]:
    """Items of one GDI split: the stems of ``root/<train.txt|valid.txt>`` when it exists (in its order),
    else every image of ``root/gd_<split>`` (sorted); maps from ``root/gd_imp_<split>``."""
    image_dir = _require_dir(root / f"gd_{split}", f"GDI {split} images", key)
    maps_dir = _require_dir(root / f"gd_imp_{split}", f"GDI {split} importance maps", key)
    images = _images_in(image_dir)
    list_file = root / GDI_LIST_FILES[split]
    listed_in = list_file if list_file.is_file() else None
    if listed_in is not None:
        by_stem = _index_by_stem(images)
        names = read_name_list(list_file)
        missing = [name for name in names if name not in by_stem]
        if missing:
            raise DatasetLayoutError(
                f"{list_file} lists {len(missing)} names with no image in {image_dir}, e.g. {missing[0]!r} "
                f"(expected {image_dir / missing[0]}.jpg or another image suffix); restore the images or remove "
                f"the names from the list ({key})"
            )
        images = [by_stem[name] for name in names]
    maps = _index_by_stem(_images_in(maps_dir))
    items = [SaliencyItem(image, _map_of(image, maps, maps_dir, "GDI", listed_in), None, NO_LABEL) for image in images]
    if not items:
        source = list_file if listed_in is not None else image_dir
        raise DatasetLayoutError(f"no GDI {split} images found in {source} ({key})")
    return items


def gdi_items(root: str | Path, split: str = "all", key: str = "data.root") -> list[SaliencyItem]:
    """GDI items of ``split`` (``train``, ``val`` or ``all`` = train then val, the paper's evaluation set),
    each image paired with the importance map of the same stem. GDI has no classes (``label`` = -1) and no
    fixations (``fixations`` = None)."""
    if split not in (*GDI_SPLITS, "all"):
        raise DatasetLayoutError(f"GDI split must be one of train, val, all; got {split!r} (data.split)")
    splits = GDI_SPLITS if split == "all" else (split,)
    return [item for s in splits for item in _gdi_split_items(Path(root), s, key)]
