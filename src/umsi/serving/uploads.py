"""What ``umsi-serve`` accepts on ``POST /predict``, checked before any pixel is decoded.

Pure functions over bytes and strings (no web framework), each raising :class:`UploadError` with the HTTP status
and one line saying what was wrong and what to send instead:

* 400 — an empty upload, a malformed or too deeply nested JSON body, a malformed base64 string, a multipart body
  without a file, an unknown query parameter or value, bytes that start like an image but do not decode
  (truncated, corrupt), an image of an aspect ratio over 50,000:1 (:func:`~umsi.data.transforms.check_result_shape`);
* 413 — a request body over ``max_upload_mb``, an image over ``max_megapixels`` (a decompression bomb: a
  20000×20000 PNG is 50 kB) or with a side over 65,535 pixels (no overlay JPEG can hold it);
* 415 — a Content-Type other than ``multipart/form-data`` or ``application/json``, bytes that are not an image.

The image size comes from the file header (Pillow reads only the header), so a bomb is refused before any
decoder allocates its pixels.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass

from PIL import Image

from umsi.data.transforms import ImageShapeError, check_result_shape

ACCEPTED_TYPES = ("multipart/form-data", "application/json")
ANSWERS = ("json", "png", "overlay")
QUERY_KEYS = ("format", "overlay")
SEND = 'send multipart/form-data (curl -F image=@photo.jpg) or application/json ({"image": "<base64>"})'
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


class UploadError(ValueError):
    """A request the server refuses; ``status`` is the HTTP status (4xx), the message one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upload:
    """An image upload that passed the checks: its bytes, a name for messages and file names, Pillow's format
    name (``JPEG``, ``PNG`` …) and its size in pixels from the header."""

    data: bytes
    name: str
    format: str
    width: int
    height: int


def clean_name(name: str | None, default: str = "upload") -> str:
    """A client's file name fit for one-line messages and file names: the last path part, control characters
    replaced, at most 120 characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(c if c.isprintable() else "_" for c in base)[:120].strip()
    return text or default


def media_type(content_type: str | None) -> str:
    """``multipart/form-data; boundary=…`` → ``multipart/form-data``; raises 415 for anything not accepted."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in ACCEPTED_TYPES:
        shown = f"Content-Type '{media}'" if media else "no Content-Type"
        raise UploadError(415, f"{shown} is not accepted: {SEND}")
    return media


def answer_kind(query: Mapping[str, str]) -> str:
    """The query string → ``json`` (default), ``png`` (``?format=png``: the heatmap PNG) or ``overlay``
    (``?overlay=true``: the overlay JPEG). Raises 400 for unknown keys or values, or both asked at once."""
    unknown = [key for key in query if key not in QUERY_KEYS]
    if unknown:
        raise UploadError(400, f"unknown query parameter '{unknown[0]}': use format=json|png or overlay=true")
    fmt = query.get("format", "json").strip().lower()
    if fmt not in ("json", "png"):
        raise UploadError(400, f"format={fmt}: use format=json (the default) or format=png (the heatmap PNG)")
    flag = query.get("overlay", "false").strip().lower()
    if flag not in _TRUE + _FALSE:
        raise UploadError(400, f"overlay={flag}: use overlay=true (the overlay JPEG) or overlay=false")
    if flag in _TRUE:
        if fmt == "png":
            raise UploadError(400, "format=png and overlay=true: ask for one (the heatmap PNG or the overlay JPEG)")
        return "overlay"
    return fmt


def check_body_size(size: int, max_bytes: int) -> None:
    """Raise 413 when a request body of ``size`` bytes is over the limit."""
    if size > max_bytes:
        raise UploadError(
            413,
            f"the request body is over {max_bytes / 2**20:g} MB (max_upload_mb): send a smaller image, or start "
            "the server with a larger max_upload_mb",
        )


def image_from_json(body: bytes) -> tuple[bytes, str]:
    """A JSON body ``{"image": "<base64 or data: URL>", "name": "optional.jpg"}`` → (image bytes, name)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise UploadError(400, f'the JSON body does not parse ({err}): send {{"image": "<base64>"}}') from None
    except RecursionError:  # json's parser recurses once per level: [[[[… 100,000 deep
        raise UploadError(400, 'the JSON body is nested too deeply to parse: send {"image": "<base64>"}') from None
    if not isinstance(payload, dict) or not isinstance(payload.get("image"), str):
        raise UploadError(400, 'the JSON body has no \'image\' string: send {"image": "<base64 of the file>"}')
    text = payload["image"]
    if text.startswith("data:"):  # a data URL, as a browser's FileReader.readAsDataURL gives it
        text = text.partition(",")[2]
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise UploadError(400, f"'image' is not valid base64 ({err}): send the file's bytes base64-encoded") from None
    name = payload.get("name")
    return data, clean_name(name if isinstance(name, str) else None, "image")


def check_image(data: bytes, name: str, max_pixels: int) -> Upload:
    """Raise unless ``data`` is a non-empty image file of at most ``max_pixels`` pixels (read from its header);
    the pixels themselves are decoded later, exactly as ``umsi-predict`` decodes a file."""
    if not data:
        raise UploadError(400, f"{name} is empty (0 bytes): send the image file's content")
    limit = f"the server accepts at most {max_pixels:,} pixels (max_megapixels)"
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, (width, height) = image.format or "image", image.size
    except Image.DecompressionBombError:
        raise UploadError(
            413, f"{name} has more than {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels (a decompression bomb?); {limit}"
        ) from None
    except Exception:  # Pillow raises many types on bytes that are not an image
        raise UploadError(
            415, f"{name} is not an image (starts with {data[:8]!r}): send a JPEG, PNG, WebP, BMP, TIFF or GIF file"
        ) from None
    if width * height > max_pixels:
        raise UploadError(413, f"{name} is {width}×{height} = {width * height:,} pixels; {limit}")
    try:
        check_result_shape((height, width), name)
    except ImageShapeError as err:
        raise UploadError(err.status, str(err)) from None
    return Upload(data, name, fmt, width, height)
