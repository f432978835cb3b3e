"""Decoding dataset files the way the official code reads them: images (BGR uint8) and maps (grayscale uint8).
Anything that does not decode raises :class:`~umsi.errors.DataFileError` naming the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from umsi.errors import DataFileError


def read_image_bgr(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 BGR as ``cv2.imread`` gives it (the official reader): grayscale expanded, alpha dropped,
    16-bit scaled to 8, CMYK and palette converted. Formats OpenCV lacks (GIF, some TIFFs) go through Pillow.
    Raises :class:`~umsi.errors.DataFileError` for anything that does not decode."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        image = _read_with_pillow(Path(path))
    if image is None:
        raise DataFileError(f"cannot read image {path} (missing, truncated or not an image)")
    return image


def _read_with_pillow(path: Path) -> np.ndarray | None:
    try:
        with Image.open(path) as image:
            image.seek(0)  # first frame of an animation
            return np.ascontiguousarray(np.asarray(image.convert("RGB"))[..., ::-1])
    except Exception:  # Pillow raises many types on malformed files; the caller reports the file
        return None


def read_map(path: Path) -> np.ndarray:
    """(H, W) uint8 grayscale saliency/importance map."""
    saliency = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if saliency is None:
        raise DataFileError(f"cannot read map {path} (missing, truncated or not an image)")
    return saliency
