"""Fixation files of every registered layout, read into 0-based (x, y) points, and maps built from fixations.

One reader, dispatched on the file: the SALICON 2017 ``.mat`` (``gaze`` struct array, 1-based [x, y]), a CAT2000
``.mat`` (``fixLocs``: a binary H×W map), ``.npy`` ((N, 2) 0-based x, y, or a binary H×W map), a CSV of x,y
(0-based pixels, an optional header line), or a binary image (MIT1003 ``_fixPts.jpg``, UEyes ``fixmaps_*``,
binary PNG): every blob of pixels above 127 is one fixation at its centroid (a single-pixel point is that pixel;
UEyes fixmaps draw each fixation as a small blob, and JPEG noise smears MIT's points). Points outside the image
are dropped by the one rule of :func:`umsi.data.layouts.inside_image`.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import scipy.io
from scipy.ndimage import gaussian_filter

from umsi.data.layouts import IMAGE_SUFFIXES, SaliconFixations, inside_image, load_salicon_fixations
from umsi.errors import DataFileError
from umsi.utils.io import atomic_write

__all__ = ["FIXATION_SUFFIXES", "fixation_map_from_points", "load_fixations", "read_fixations", "write_map_png"]

FIXATION_SUFFIXES = (".mat", ".npy", ".csv", *IMAGE_SUFFIXES)
BINARY_THRESHOLD = 127


def _binary_points(binary: np.ndarray) -> np.ndarray:
    """(N, 2) float64 (x, y) centroids of the connected blobs of a 2-D map's pixels above the threshold."""
    mask = (np.asarray(binary, dtype=np.float64) > (BINARY_THRESHOLD if binary.max() > 1 else 0)).astype(np.uint8)
    count, _, _, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return np.asarray(centroids[1:count], dtype=np.float64).reshape(-1, 2)


def _read_mat(path: Path, image_hw: tuple[int, int] | None) -> SaliconFixations:
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as err:  # scipy raises many types on bad bytes
        raise DataFileError(f"{path}: not a readable .mat file ({type(err).__name__}: {err})") from None
    if "gaze" in mat:
        return load_salicon_fixations(path, image_hw)
    if "fixLocs" in mat:
        binary = np.asarray(mat["fixLocs"])
        if binary.ndim != 2:
            raise DataFileError(f"{path}: 'fixLocs' is {binary.shape}, expected a 2-D binary map")
        return _inside(_binary_points(binary), image_hw or binary.shape[:2])
    names = sorted(k for k in mat if not k.startswith("__"))
    raise DataFileError(f"{path}: no 'gaze' (SALICON) or 'fixLocs' (CAT2000) variable (has {names})")


def _read_csv(path: Path) -> np.ndarray:
    rows: list[tuple[float, float]] = []
    try:
        with path.open(newline="") as handle:
            for lineno, row in enumerate(csv.reader(handle), 1):
                if not row or not "".join(row).strip():
                    continue
                try:
                    rows.append((float(row[0]), float(row[1])))
                except (ValueError, IndexError):
                    if lineno == 1:  # a header line
                        continue
                    raise DataFileError(f"{path}:{lineno}: expected 'x,y' numbers, got {row!r}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataFileError(f"{path}: not a readable CSV of x,y ({err})") from None
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2)


def _read_npy(path: Path) -> tuple[np.ndarray, tuple[int, int] | None]:
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as err:
        raise DataFileError(f"{path}: not a readable .npy file ({type(err).__name__}: {err})") from None
    if array.ndim == 2 and array.shape[1] == 2 and array.dtype.kind == "f":
        return array.astype(np.float64), None
    if array.ndim == 2:
        return _binary_points(array), (int(array.shape[0]), int(array.shape[1]))
    raise DataFileError(f"{path}: array of shape {array.shape}; expected (N, 2) float x, y or a 2-D binary map")


def _inside(points: np.ndarray, frame_hw: tuple[int, int] | None) -> SaliconFixations:
    keep = inside_image(points, frame_hw if frame_hw is not None else (np.inf, np.inf))
    frame = (int(frame_hw[0]), int(frame_hw[1])) if frame_hw is not None else None
    return SaliconFixations(points[keep].astype(np.float32), len(points), frame, None)


def load_fixations(path: str | Path, image_hw: tuple[int, int] | None = None) -> SaliconFixations:
    """The fixations of any supported file (see the module docstring) as 0-based (x, y) points inside the image of
    ``image_hw`` = (height, width) (else the file's own frame when it has one), with the count dropped.

    Raises :class:`~umsi.errors.DataFileError` naming the file for anything that is not such a file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mat":
        return _read_mat(path, image_hw)
    if suffix == ".csv":
        return _inside(_read_csv(path), image_hw)
    if suffix == ".npy":
        points, frame = _read_npy(path)
        return _inside(points, image_hw or frame)
    if suffix in IMAGE_SUFFIXES:
        binary = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if binary is None:
            raise DataFileError(f"cannot read fixation map {path} (missing, truncated or not an image)")
        return _inside(_binary_points(binary), image_hw or binary.shape[:2])
    raise DataFileError(f"{path}: unsupported fixation file; use one of {', '.join(FIXATION_SUFFIXES)}")


def read_fixations(path: str | Path, image_hw: tuple[int, int] | None = None) -> np.ndarray:
    """(N, 2) float32 0-based (x, y) fixations of ``path`` inside the image (:func:`load_fixations`)."""
    return load_fixations(path, image_hw).points


def fixation_map_from_points(
    points: Sequence[Sequence[float]] | np.ndarray, hw: tuple[int, int], sigma: float
) -> np.ndarray:
    """(H, W) uint8 saliency map: fixation counts at the rounded 0-based (x, y) ``points`` blurred by a Gaussian of
    ``sigma`` pixels (``scipy.ndimage.gaussian_filter``, reflected borders), max scaled to 255 (UEyes builds its
    heatmaps this way with σ = 40 px). No fixation gives an all-zero map."""
    height, width = hw
    counts = np.zeros((height, width), np.float64)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    points = points[inside_image(points, (height, width))]
    np.add.at(counts, (points[:, 1].astype(int), points[:, 0].astype(int)), 1.0)
    blurred = gaussian_filter(counts, sigma=float(sigma)) if sigma > 0 else counts
    peak = blurred.max()
    return np.zeros((height, width), np.uint8) if peak <= 0 else np.round(blurred / peak * 255.0).astype(np.uint8)


def write_map_png(path: Path, saliency: np.ndarray) -> None:
    """Write an 8-bit map as PNG atomically (temporary name, then rename)."""

    def _write(tmp: Path) -> None:
        ok, encoded = cv2.imencode(".png", saliency)
        if not ok:
            raise OSError(f"cannot encode {path}")
        tmp.write_bytes(encoded.tobytes())

    atomic_write(path, _write)
