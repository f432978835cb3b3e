"""Pictures of predictions: colour maps and [image | ground truth | prediction overlay] rows."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def colormap_code(name: str) -> int:
    """OpenCV colormap by name (``jet``, ``turbo``, ``inferno``, ``viridis`` …)."""
    code = getattr(cv2, f"COLORMAP_{name.upper()}", None)
    if code is None:
        names = sorted(k.removeprefix("COLORMAP_").lower() for k in dir(cv2) if k.startswith("COLORMAP_"))
        raise ValueError(f"colormap={name!r} is not an OpenCV colormap; choose one of {', '.join(names)}")
    return code


def heatmap_rgb(saliency: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """(H, W) map → (H, W, 3) uint8 RGB colour map after min–max scaling (a constant map gets the lowest colour)."""
    x = np.asarray(saliency, dtype=np.float32)
    x = (x - x.min()) / max(float(x.max() - x.min()), 1e-12)
    return np.ascontiguousarray(cv2.applyColorMap((x * 255).astype(np.uint8), colormap_code(colormap))[..., ::-1])


def overlay_rgb(image_rgb: np.ndarray, saliency: np.ndarray, alpha: float = 0.5, colormap: str = "jet") -> np.ndarray:
    """The coloured map blended over the image (same (H, W)): (1 − alpha)·image + alpha·heatmap, uint8 RGB."""
    return cv2.addWeighted(image_rgb, 1.0 - alpha, heatmap_rgb(saliency, colormap), alpha, 0)


def triptych(image_rgb: np.ndarray, target: np.ndarray, pred: np.ndarray, height: int | None = None) -> np.ndarray:
    """One row [image | ground truth | prediction over the image], each (h, w) = the target's size scaled to
    ``height`` rows when given. image (H, W, 3) uint8 RGB, target and pred 2-D maps → (h, 3w, 3) uint8."""
    h, w = target.shape[:2]
    if height is not None:
        h, w = height, max(1, round(w * height / h))

    def fit(x: np.ndarray) -> np.ndarray:
        return cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR)

    rgb = fit(image_rgb)
    overlay = overlay_rgb(rgb, fit(np.asarray(pred, dtype=np.float32)))
    return np.concatenate([rgb, fit(heatmap_rgb(target)), overlay], axis=1)


def stack_rows(rows: Sequence[np.ndarray], pad: int = 4) -> np.ndarray:
    """Stack rows of possibly different widths on a black canvas, ``pad`` pixels apart → (ΣH, max W, 3)."""
    width = max(r.shape[1] for r in rows)
    canvas = np.zeros((sum(r.shape[0] for r in rows) + pad * (len(rows) - 1), width, 3), dtype=np.uint8)
    top = 0
    for row in rows:
        canvas[top : top + row.shape[0], : row.shape[1]] = row
        top += row.shape[0] + pad
    return canvas


def heatmap_png(saliency: np.ndarray) -> bytes:
    """(H, W) map in [0, 1] → the bytes of an 8-bit grayscale PNG (level = round(255·value)), as ``umsi-predict``
    writes ``<name>_heatmap.png`` and ``umsi-serve`` returns it."""
    levels = (np.asarray(saliency, dtype=np.float32) * 255.0).round().astype(np.uint8)
    return _encode(".png", levels)


def overlay_jpeg(image_bgr: np.ndarray, saliency: np.ndarray, alpha: float = 0.5, colormap: str = "jet") -> bytes:
    """The JPEG bytes (OpenCV's default quality 95) of :func:`overlay_rgb` over an (H, W, 3) uint8 BGR image, as
    ``umsi-predict`` writes ``<name>_overlay.jpg`` and ``umsi-serve`` returns it."""
    return _encode(
        ".jpg", np.ascontiguousarray(overlay_rgb(image_bgr[..., ::-1], saliency, alpha, colormap)[..., ::-1])
    )


def _encode(suffix: str, image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(suffix, image)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} {image.dtype} image as {suffix}")
    return buffer.tobytes()
