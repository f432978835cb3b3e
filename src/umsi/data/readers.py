"""Decoding dataset files the way the official code reads them: images (BGR uint8) and maps (grayscale uint8).
Anything that does not decode raises :class:`~umsi.errors.DataFileError` naming the file."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from umsi.errors import DataFileError


def read_image_bgr(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 BGR as ``cv2.imread`` gives it (the official reader): grayscale expanded, alpha dropped,
    16-bit scaled to 8, CMYK and palette converted. Formats OpenCV lacks (GIF, some TIFFs) go through Pillow.
    Raises :class:`~umsi.errors.DataFileError` for anything that does not decode."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        data = b""
    return decode_image_bgr(data, str(path))


def decode_image_bgr(data: bytes, source: str) -> np.ndarray:
    """The bytes of an image file → what :func:`read_image_bgr` gives for that file (``cv2.imdecode``, which
    decodes exactly as ``cv2.imread``, EXIF orientation included; Pillow for what OpenCV cannot read). ``source``
    names the file or upload in the :class:`~umsi.errors.DataFileError` raised for anything that does not decode."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None and data:
        image = _read_with_pillow(io.BytesIO(data))
    if image is None:
        raise DataFileError(f"cannot read image {source} (missing, truncated or not an image)")
    return image


def _read_with_pillow(file: io.BytesIO) -> np.ndarray | None:
    try:
        with Image.open(file) as image:
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
