"""Deterministic synthetic stand-ins for SALICON 2017, Imp1k and GDI, in the real on-disk layouts.

The content is deliberately simple (large, high-contrast elements, one distinct layout template per class)
so that a small CNN trained from scratch on a CPU at ~96x128 input can learn it. Every item draws from its
own ``np.random.Generator`` seeded from ``(seed, dataset, split, index)``, so the output does not depend on
the order of generation or on the other counts.

Layouts written under ``out_dir``::

    salicon/images/{train,val}/COCO_{train,val}2014_%012d.jpg   RGB JPEG
    salicon/maps/{train,val}/<stem>.png                          uint8 grayscale, max 255
    salicon/fixations/{train,val}/<stem>.mat                     image, resolution, gaze struct array
    imp1k/imgs/<class>/<class>_%04d.{jpg,png}                    RGB (PNG for mobile_uis and webpages)
    imp1k/maps/<class>/<class>_%04d.png                          uint8 grayscale, max 255
    imp1k/train_test_split_imp1k.json                            [train_image_paths, test_image_paths]
    gdi/gd_{train,val}/%06d_<10 digits>_<10 hex>_m.jpg           RGB; advertisements and movie posters
    gdi/gd_imp_{train,val}/<stem>.png                            uint8 grayscale, max 255
    gdi/train.txt, gdi/valid.txt                                 stems (no extension), one per line
    .complete                                                    empty marker, written last

A tree whose ``.complete`` predates GDI (no ``gdi/train.txt`` / ``gdi/valid.txt``) gets only the GDI part added.
"""

from __future__ import annotations

import colorsys
import io
import json
import logging
import os
import re
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import scipy.io
from tqdm import tqdm

__all__ = ["IMP1K_CLASSES", "SALICON_CLASS", "describe", "generate"]

log = logging.getLogger(__name__)

SALICON_CLASS = "natural_images"
IMP1K_CLASSES = ("advertisements", "infographics", "mobile_uis", "movie_posters", "webpages")

Color = tuple[int, int, int]
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels (inclusive drawing corners)
Gaze = tuple[np.ndarray, np.ndarray, np.ndarray]  # location (N, 2), timestamp (N, 1), fixations (M, 2)

_JPEG_QUALITY = 90
_MARKER = ".complete"
_SPLIT_FILE = "train_test_split_imp1k.json"
# GDI is mostly advertisements and posters; the list files name each split's stems, and are written last.
_GDI_CLASSES = ("advertisements", "movie_posters")
_GDI_LISTS = {"train": "train.txt", "val": "valid.txt"}
# Base (H, W) and image extension per Imp1k class; each image jitters both sides by up to +-10 %.
_IMP1K_SPECS: dict[str, tuple[tuple[int, int], str]] = {
    "advertisements": ((260, 260), ".jpg"),
    "infographics": ((360, 200), ".jpg"),
    "mobile_uis": ((320, 180), ".png"),
    "movie_posters": ((300, 200), ".jpg"),
    "webpages": ((240, 320), ".png"),
}
_SKIN: tuple[Color, ...] = (
    (255, 224, 189),
    (241, 194, 160),
    (234, 192, 134),
    (255, 205, 148),
    (224, 172, 125),
)
# Files this module owns: anything else in the output folders is never touched.
_OWN_FILE = re.compile(
    r"^(COCO_(train|val)2014_\d{12}|(" + "|".join(IMP1K_CLASSES) + r")_\d{4}|\d{6}_\d{10}_[0-9a-f]{10}_m)"
    r"\.(jpg|png|mat)$|^\..+\.tmp$"
)


# --------------------------------------------------------------------------------------------- helpers


def _item_rng(seed: int, dataset: str, split: str, index: int) -> np.random.Generator:
    """Independent generator for one item, stable across runs and platforms."""
    codes = [zlib.crc32(dataset.encode()), zlib.crc32(split.encode())]
    return np.random.default_rng(np.random.SeedSequence([seed, *codes, index]))


def _hsv(h: float, s: float, v: float) -> Color:
    """RGB colour (0..255 ints) from HSV in [0, 1]; hue wraps."""
    r, g, b = colorsys.hsv_to_rgb(float(h) % 1.0, float(s), float(v))
    return round(r * 255), round(g * 255), round(b * 255)


def _save_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a hidden temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _encode_image(img: np.ndarray, ext: str) -> bytes:
    """Encode an RGB (H, W, 3) or grayscale (H, W) uint8 array as ``.jpg`` (quality 90) or ``.png``."""
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY] if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, img, params)
    if not ok:
        raise RuntimeError(f"cv2.imencode failed for {ext}")
    return buf.tobytes()


def _finalise_map(m: np.ndarray, sigma: float) -> np.ndarray:
    """Blur a float (H, W) map with a Gaussian of ``sigma`` px and scale it to uint8 with max exactly 255."""
    m = cv2.GaussianBlur(m.astype(np.float32), (0, 0), sigmaX=sigma, sigmaY=sigma)
    peak = float(m.max())
    if peak <= 0:
        raise ValueError("empty saliency/importance map")
    return np.clip(np.rint(m * (255.0 / peak)), 0, 255).astype(np.uint8)


def _render_importance(shape: tuple[int, int], elements: Sequence[tuple[np.ndarray, float]]) -> np.ndarray:
    """Importance map (H, W) uint8 from (binary mask, weight) elements: per-pixel max of weights, blurred."""
    m = np.zeros(shape, np.float32)
    for mask, weight in elements:
        np.maximum(m, mask.astype(np.float32) * weight, out=m)
    return _finalise_map(m, sigma=0.02 * min(shape))


def _gaussian(shape: tuple[int, int], cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    """Unit-peak anisotropic Gaussian (H, W) float32 centred at pixel (cx, cy) with std (sx, sy) px."""
    ys = np.arange(shape[0], dtype=np.float32)[:, None]
    xs = np.arange(shape[1], dtype=np.float32)[None, :]
    return np.exp(-0.5 * (((xs - cx) / sx) ** 2 + ((ys - cy) / sy) ** 2)).astype(np.float32)


def _rounded_rect(target: np.ndarray, box: Box, radius: int, color: Color | int) -> None:
    """Filled rectangle with rounded corners of ``radius`` px (0 = square)."""
    x0, y0, x1, y1 = box
    r = int(max(0, min(radius, (x1 - x0) // 2, (y1 - y0) // 2)))
    if r == 0:
        cv2.rectangle(target, (x0, y0), (x1, y1), color, -1)
        return
    cv2.rectangle(target, (x0 + r, y0), (x1 - r, y1), color, -1)
    cv2.rectangle(target, (x0, y0 + r), (x1, y1 - r), color, -1)
    for cx, cy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x0 + r, y1 - r), (x1 - r, y1 - r)):
        cv2.circle(target, (cx, cy), r, color, -1)


class _Canvas:
    """RGB drawing surface (H, W, 3) uint8 that records the (mask, weight) importance of what is drawn."""

    def __init__(self, h: int, w: int, background: Color | np.ndarray) -> None:
        self.h, self.w = h, w
        self.img = np.empty((h, w, 3), np.uint8)
        self.img[:] = background
        self.elements: list[tuple[np.ndarray, float]] = []

    def _record(self, draw: Callable[[np.ndarray, Color | int], None], color: Color, weight: float) -> None:
        draw(self.img, tuple(int(c) for c in color))
        if weight > 0:
            mask = np.zeros((self.h, self.w), np.uint8)
            draw(mask, 1)
            self.elements.append((mask, weight))

    def importance(self) -> np.ndarray:
        """Importance map (H, W) uint8, max 255."""
        return _render_importance((self.h, self.w), self.elements)

    def rect(self, box: Box, color: Color, weight: float = 0.0, radius: int = 0) -> None:
        self._record(lambda t, c: _rounded_rect(t, box, radius, c), color, weight)

    def disc(self, cx: int, cy: int, r: int, color: Color, weight: float = 0.0) -> None:
        self._record(lambda t, c: cv2.circle(t, (int(cx), int(cy)), max(1, int(r)), c, -1), color, weight)

    def ellipse(self, cx: int, cy: int, ax: int, ay: int, angle: float, color: Color, weight: float = 0.0) -> None:
        axes = (max(1, int(ax)), max(1, int(ay)))
        self._record(lambda t, c: cv2.ellipse(t, (int(cx), int(cy)), axes, angle, 0, 360, c, -1), color, weight)

    def polygon(self, pts: np.ndarray, color: Color, weight: float = 0.0) -> None:
        pts = np.round(pts).astype(np.int32).reshape(-1, 1, 2)
        self._record(lambda t, c: cv2.fillPoly(t, [pts], c), color, weight)

    def text(
        self,
        rng: np.random.Generator,
        box: Box,
        line_h: float,
        color: Color,
        weight: float = 0.0,
        *,
        spacing: float = 2.0,
        word_len: tuple[float, float] = (1.5, 6.0),
        gap: float = 0.8,
        align: str = "left",
        max_lines: int | None = None,
    ) -> None:
        """Rows of rounded "word" blocks of height ``line_h`` px filling ``box``; the block is one element.

        ``spacing`` is the line pitch, ``word_len`` and ``gap`` the word length range and word gap, all in
        units of ``line_h``. A title is a single row of tall words (``max_lines=1``).
        """
        x0, y0, x1, y1 = box
        lh = max(1, round(line_h))
        pitch = max(lh + 1, round(lh * spacing))
        words: list[Box] = []
        y, n_lines = y0, 0
        while (n_lines == 0 or y + lh <= y1) and (max_lines is None or n_lines < max_lines):
            last = y + pitch + lh > y1 or (max_lines is not None and n_lines + 1 == max_lines)
            target = (x1 - x0) * (rng.uniform(0.4, 0.8) if last and max_lines != 1 else rng.uniform(0.85, 1.0))
            row, x = [], 0.0
            while x < target:
                length = min(rng.uniform(*word_len) * lh, (x1 - x0) - x)
                row.append((x, x + length))
                x += length + gap * lh
            shift = x0 + {"left": 0.0, "center": ((x1 - x0) - row[-1][1]) / 2}[align]
            words += [(round(a + shift), y, max(round(a + shift) + 1, round(b + shift)), y + lh) for a, b in row]
            y, n_lines = y + pitch, n_lines + 1
        radius = max(1, lh // 3)

        def draw(t: np.ndarray, c: Color | int) -> None:
            for word in words:
                _rounded_rect(t, word, radius, c)

        self._record(draw, color, weight)

    def face(self, cx: int, cy: int, r: int, skin: Color, weight: float = 0.0) -> None:
        """Light disc with two dark eyes and a mouth; the disc is the importance element."""
        self.disc(cx, cy, r, skin, weight)
        eye_r = max(1, round(0.14 * r))
        for dx in (-0.38, 0.38):
            cv2.circle(self.img, (round(cx + dx * r), round(cy - 0.18 * r)), eye_r, (25, 20, 20), -1)
        mouth = (max(1, round(0.35 * r)), max(1, round(0.15 * r)))
        cv2.ellipse(self.img, (cx, round(cy + 0.38 * r)), mouth, 0, 0, 180, (150, 40, 40), max(1, r // 8))

    def picture(self, rng: np.random.Generator, box: Box, weight: float, face_weight: float = 0.0) -> None:
        """Photo-like block: vertical two-colour gradient with a few shapes, optionally a face."""
        x0, y0, x1, y1 = box
        self.rect(box, (0, 0, 0), weight)
        hue = rng.random()
        top = np.array(_hsv(hue, rng.uniform(0.3, 0.7), rng.uniform(0.7, 1.0)), np.float32)
        bottom = np.array(_hsv(hue + rng.uniform(0.15, 0.5), rng.uniform(0.5, 0.9), rng.uniform(0.3, 0.7)))
        t = np.linspace(0.0, 1.0, y1 - y0 + 1, dtype=np.float32)[:, None, None]
        sub = np.broadcast_to(top * (1 - t) + bottom * t, (y1 - y0 + 1, x1 - x0 + 1, 3)).astype(np.uint8)
        sub = np.ascontiguousarray(sub)
        pw, ph = x1 - x0, y1 - y0
        for _ in range(int(rng.integers(1, 4))):
            center = (int(rng.integers(0, pw + 1)), int(rng.integers(ph // 3, ph + 1)))
            axes = (max(1, int(pw * rng.uniform(0.15, 0.45))), max(1, int(ph * rng.uniform(0.1, 0.3))))
            color = _hsv(rng.random(), rng.uniform(0.4, 0.9), rng.uniform(0.3, 0.9))
            cv2.ellipse(sub, center, axes, 0, 0, 360, color, -1)
        self.img[y0 : y1 + 1, x0 : x1 + 1] = sub
        if face_weight > 0:
            r = max(3, round(min(pw, ph) * rng.uniform(0.18, 0.26)))
            cx = x0 + round(pw * rng.uniform(0.3, 0.7))
            cy = y0 + round(ph * rng.uniform(0.3, 0.5))
            self.disc(cx, cy + round(1.9 * r), round(1.4 * r), _hsv(rng.random(), 0.7, 0.5))  # shoulders
            self.face(cx, cy, r, _SKIN[int(rng.integers(len(_SKIN)))], face_weight)


def _jitter(rng: np.random.Generator, lo: float, hi: float, size: int) -> int:
    """Random pixel position ``size * U(lo, hi)``."""
    return round(size * rng.uniform(lo, hi))


# ----------------------------------------------------------------------------------- Imp1k templates


def _movie_poster(rng: np.random.Generator, h: int, w: int) -> _Canvas:
    """Dark portrait poster: picture with a face on top, bright title near the bottom, tiny credits."""
    c = _Canvas(h, w, _hsv(rng.random(), rng.uniform(0.3, 0.7), rng.uniform(0.04, 0.16)))
    m = _jitter(rng, 0.04, 0.09, w)
    c.picture(rng, (m, _jitter(rng, 0.03, 0.07, h), w - 1 - m, _jitter(rng, 0.58, 0.63, h)), 0.4, 0.75)
    ty = _jitter(rng, 0.67, 0.71, h)
    title_color = _hsv(rng.choice([0.0, 0.12, 0.15, 0.55]), rng.uniform(0.0, 0.9), 1.0)
    c.text(
        rng,
        (round(0.08 * w), ty, round(0.92 * w), h),
        0.09 * h,
        title_color,
        1.0,
        word_len=(1.5, 3.5),
        gap=0.5,
        align="center",
        max_lines=1,
    )
    grey = int(rng.integers(140, 200))
    c.text(
        rng,
        (round(0.12 * w), round(0.86 * h), round(0.88 * w), round(0.97 * h)),
        max(2, 0.016 * h),
        (grey, grey, grey),
        0.12,
        word_len=(1.0, 4.0),
        align="center",
    )
    return c


def _webpage(rng: np.random.Generator, h: int, w: int) -> _Canvas:
    """Light landscape page: coloured nav bar with logo, dark header title, text columns, 1-2 pictures."""
    g = int(rng.integers(232, 256))
    c = _Canvas(h, w, (g, g, g))
    nav_h = _jitter(rng, 0.08, 0.11, h)
    c.rect((0, 0, w - 1, nav_h), _hsv(rng.random(), rng.uniform(0.6, 0.9), rng.uniform(0.45, 0.8)))
    logo_r = round(0.36 * nav_h)
    c.rect(
        (round(0.03 * w), nav_h // 2 - logo_r, round(0.03 * w) + 3 * logo_r, nav_h // 2 + logo_r),
        _hsv(rng.random(), 0.9, 1.0),
        0.9,
        radius=logo_r // 2,
    )
    c.text(
        rng,
        (round(0.45 * w), round(0.4 * nav_h), round(0.95 * w), nav_h),
        0.22 * nav_h,
        (235, 235, 235),
        0.2,
        word_len=(1.5, 3.0),
        gap=2.0,
        max_lines=1,
    )
    ty = nav_h + _jitter(rng, 0.05, 0.08, h)
    c.text(
        rng,
        (round(0.05 * w), ty, _jitter(rng, 0.45, 0.7, w), h),
        0.065 * h,
        (int(rng.integers(10, 60)),) * 3,
        1.0,
        word_len=(1.5, 4.0),
        gap=0.5,
        max_lines=1,
    )
    n_cols = int(rng.integers(2, 4))
    top, bottom, margin, gutter = round(0.33 * h), round(0.96 * h), round(0.05 * w), round(0.04 * w)
    col_w = (w - 2 * margin - (n_cols - 1) * gutter) // n_cols
    pics = set(rng.choice(n_cols, size=int(rng.integers(1, 3)), replace=False).tolist())
    for i in range(n_cols):
        x0 = margin + i * (col_w + gutter)
        y0 = top
        if i in pics:
            y0 = top + _jitter(rng, 0.35, 0.55, bottom - top)
            c.picture(rng, (x0, top, x0 + col_w, y0 - 6), 0.5)
        c.text(rng, (x0, y0, x0 + col_w, bottom), max(2, 0.015 * h), (70, 70, 80), 0.1, spacing=2.2)
    return c


def _mobile_ui(rng: np.random.Generator, h: int, w: int) -> _Canvas:
    """Tall app screen: status bar, coloured app bar with title, list rows with round icons, action button."""
    hue = rng.random()
    c = _Canvas(h, w, _hsv(hue, rng.uniform(0.0, 0.06), 1.0))
    status_h, bar_h = round(0.035 * h), _jitter(rng, 0.11, 0.13, h)
    c.rect((0, 0, w - 1, bar_h), _hsv(hue, rng.uniform(0.65, 0.95), rng.uniform(0.55, 0.85)))
    c.rect((0, 0, w - 1, status_h), _hsv(hue, 0.9, 0.35))
    c.text(
        rng,
        (round(0.7 * w), status_h // 4, round(0.96 * w), status_h),
        status_h / 2,
        (230, 230, 230),
        0.05,
        word_len=(0.8, 1.5),
        max_lines=1,
    )
    c.text(
        rng,
        (round(0.07 * w), status_h + round(0.3 * (bar_h - status_h)), round(0.8 * w), bar_h),
        0.4 * (bar_h - status_h),
        (255, 255, 255),
        0.9,
        word_len=(1.5, 3.5),
        gap=0.5,
        max_lines=1,
    )
    n_rows = int(rng.integers(5, 8))
    top = bar_h + round(0.02 * h)
    row_h = (round(0.97 * h) - top) // n_rows
    for i in range(n_rows):
        y = top + i * row_h
        icon_r = round(0.3 * row_h)
        c.disc(round(0.05 * w) + icon_r, y + row_h // 2, icon_r, _hsv(rng.random(), 0.75, 0.9), 0.6)
        tx = round(0.1 * w) + 2 * icon_r
        n_lines = int(rng.integers(1, 3))
        c.text(
            rng,
            (tx, y + round(0.3 * row_h), round(0.92 * w), y + row_h),
            max(2, 0.13 * row_h),
            (60, 60, 60),
            0.15,
            spacing=2.2,
            max_lines=n_lines,
        )
        c.rect((tx, y + row_h - 1, w - 1, y + row_h - 1), (215, 215, 215))
    fab_r = _jitter(rng, 0.085, 0.1, w)
    fx, fy = w - round(0.06 * w) - fab_r, h - round(0.04 * h) - fab_r
    c.disc(fx, fy, fab_r, _hsv(hue + 0.5, 0.9, 0.95), 0.85)
    arm = fab_r // 2
    c.rect((fx - arm, fy - 1, fx + arm, fy + 1), (255, 255, 255))
    c.rect((fx - 1, fy - arm, fx + 1, fy + arm), (255, 255, 255))
    return c


def _infographic(rng: np.random.Generator, h: int, w: int) -> _Canvas:
    """Tall pastel sheet: centred title, grid of cells with an icon, a big number and small text."""
    hue = rng.random()
    c = _Canvas(h, w, _hsv(hue, rng.uniform(0.15, 0.3), rng.uniform(0.93, 1.0)))
    accent = _hsv(hue + 0.5, 0.85, 0.75)
    c.text(
        rng,
        (round(0.06 * w), _jitter(rng, 0.025, 0.045, h), round(0.94 * w), h),
        0.055 * h,
        _hsv(hue, 0.8, 0.3),
        1.0,
        word_len=(1.5, 3.0),
        gap=0.5,
        align="center",
        max_lines=1,
    )
    n_rows = int(rng.integers(3, 5))
    top, bottom = round(0.15 * h), round(0.97 * h)
    cell_h, cell_w = (bottom - top) // n_rows, (w - round(0.08 * w)) // 2
    for i in range(n_rows):
        for j in range(2):
            x0, y0 = round(0.04 * w) + j * cell_w, top + i * cell_h
            icon = round(0.16 * min(cell_w, 2 * cell_h))
            icx, icy = x0 + round(0.08 * cell_w) + icon, y0 + round(0.1 * cell_h) + icon
            icon_color = _hsv(hue + rng.uniform(0.3, 0.7), 0.75, 0.85)
            if rng.random() < 0.5:
                c.disc(icx, icy, icon, icon_color, 0.55)
            else:
                c.rect((icx - icon, icy - icon, icx + icon, icy + icon), icon_color, 0.55, radius=icon // 3)
            num_h = round(0.36 * cell_h)
            c.text(
                rng,
                (icx + icon + round(0.06 * cell_w), icy - num_h // 2, x0 + cell_w, icy + num_h),
                num_h,
                accent,
                0.8,
                word_len=(0.45, 0.6),
                gap=0.15,
                max_lines=1,
            )
            c.text(
                rng,
                (
                    x0 + round(0.06 * cell_w),
                    icy + icon + round(0.1 * cell_h),
                    x0 + round(0.92 * cell_w),
                    y0 + round(0.95 * cell_h),
                ),
                max(2, 0.06 * cell_h),
                (90, 90, 90),
                0.15,
                max_lines=3,
            )
    return c


def _advertisement(rng: np.random.Generator, h: int, w: int) -> _Canvas:
    """Near-square vivid ad: large product shape on one side, bold slogan on the other, small corner logo."""
    hue = rng.random()
    c = _Canvas(h, w, _hsv(hue, rng.uniform(0.75, 1.0), rng.uniform(0.75, 1.0)))
    left = bool(rng.random() < 0.5)
    pcx = round(w * (rng.uniform(0.25, 0.32) if left else rng.uniform(0.68, 0.75)))
    pcy = _jitter(rng, 0.5, 0.6, h)
    pw, ph = _jitter(rng, 0.12, 0.16, w), _jitter(rng, 0.26, 0.33, h)
    product = _hsv(hue + 0.5, rng.uniform(0.0, 0.8), rng.uniform(0.85, 1.0)) if rng.random() < 0.7 else (20,) * 3
    if rng.random() < 0.5:  # bottle: body + neck
        c.rect((pcx - pw, pcy - ph // 2, pcx + pw, pcy + ph), product, 0.85, radius=pw // 2)
        c.rect((pcx - pw // 3, pcy - ph, pcx + pw // 3, pcy - ph // 2), product, 0.85, radius=pw // 6)
    else:  # round product
        c.ellipse(pcx, pcy, round(1.2 * pw), round(0.9 * ph), float(rng.uniform(-20, 20)), product, 0.85)
    c.ellipse(pcx - pw // 3, pcy, max(2, pw // 6), max(2, ph // 3), 0.0, (255, 255, 255))  # highlight
    ink = (255, 255, 255) if rng.random() < 0.6 else (15, 15, 15)
    sx0 = round(0.52 * w) if left else round(0.06 * w)
    c.text(
        rng,
        (sx0, _jitter(rng, 0.12, 0.22, h), sx0 + round(0.42 * w), h),
        0.075 * h,
        ink,
        1.0,
        word_len=(1.2, 2.5),
        gap=0.4,
        spacing=1.5,
        max_lines=int(rng.integers(2, 4)),
    )
    lr = round(0.045 * min(h, w))
    lx = w - round(0.2 * w) if left else round(0.06 * w) + lr
    ly = h - round(0.06 * h) - lr
    c.disc(lx, ly, lr, ink, 0.5)
    c.text(
        rng,
        (lx + lr + 3, ly - lr // 3, lx + lr + 3 + 4 * lr, ly + lr),
        0.6 * lr,
        ink,
        0.5,
        word_len=(2.0, 3.0),
        max_lines=1,
    )
    return c


_TEMPLATES: dict[str, Callable[[np.random.Generator, int, int], _Canvas]] = {
    "advertisements": _advertisement,
    "infographics": _infographic,
    "mobile_uis": _mobile_ui,
    "movie_posters": _movie_poster,
    "webpages": _webpage,
}


def make_design(rng: np.random.Generator, cls: str) -> tuple[np.ndarray, np.ndarray]:
    """One Imp1k-style design of class ``cls``: RGB image (H, W, 3) uint8 and importance map (H, W) uint8."""
    (bh, bw), _ = _IMP1K_SPECS[cls]
    h, w = round(bh * rng.uniform(0.9, 1.1)), round(bw * rng.uniform(0.9, 1.1))
    canvas = _TEMPLATES[cls](rng, h, w)
    return canvas.img, canvas.importance()


# ------------------------------------------------------------------------------------ SALICON content


def _natural_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth muted background (H, W, 3) uint8: upsampled low-frequency colour noise plus a gradient."""
    base = np.array(_hsv(rng.random(), rng.uniform(0.1, 0.35), rng.uniform(0.35, 0.75)), np.float32)
    grid = base + rng.normal(0.0, 28.0, (int(rng.integers(2, 5)), int(rng.integers(3, 6)), 3))
    bg = cv2.resize(grid.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    ramp = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None, None] * rng.uniform(-25, 25)
    bg = bg + ramp + rng.normal(0.0, 3.0, (h, w, 3)).astype(np.float32)
    return np.clip(bg, 0, 255).astype(np.uint8)


def make_natural(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """SALICON-style scene: RGB image (H, W, 3) uint8 and saliency map (H, W) uint8 with max 255.

    1-3 saturated objects (ellipse / rounded rectangle / blob, some carrying a face) on a smooth muted
    background; saliency is a sum of Gaussians on the objects (faces strongest) plus a weak centre bias.
    """
    c = _Canvas(h, w, _natural_background(rng, h, w))
    sal = 0.12 * _gaussian((h, w), w / 2, h / 2, 0.3 * w, 0.3 * h)
    placed: list[tuple[float, float, float]] = []
    side = min(h, w)
    for _ in range(int(rng.integers(1, 4))):
        r = side * rng.uniform(0.09, 0.2)
        for _attempt in range(20):  # avoid heavy overlap with earlier objects
            cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
            if all(np.hypot(cx - px, cy - py) > 0.8 * (r + pr) for px, py, pr in placed):
                break
        placed.append((cx, cy, r))
        color = _hsv(rng.random(), rng.uniform(0.75, 1.0), rng.uniform(0.75, 1.0))
        kind = int(rng.integers(3))
        aspect = rng.uniform(0.6, 1.0)
        if kind == 0:
            c.ellipse(round(cx), round(cy), round(r), round(r * aspect), float(rng.uniform(0, 180)), color)
        elif kind == 1:
            box = (round(cx - r), round(cy - r * aspect), round(cx + r), round(cy + r * aspect))
            c.rect(box, color, radius=round(0.3 * r))
        else:
            angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(7, 12))))
            radii = r * rng.uniform(0.65, 1.0, angles.size)
            c.polygon(np.stack([cx + radii * np.cos(angles), cy + radii * aspect * np.sin(angles)], 1), color)
        bg_color = c.img[int(np.clip(cy - 1.1 * r, 0, h - 1)), int(np.clip(cx, 0, w - 1))].astype(np.float32)
        contrast = float(np.linalg.norm(bg_color - np.array(color, np.float32))) / 441.7
        weight = 0.3 + 0.3 * (r / (0.2 * side)) + 0.3 * contrast
        sal += weight * _gaussian((h, w), cx, cy, 0.6 * r, 0.6 * r * aspect)
        if rng.random() < 0.4:
            fr = round(0.45 * r)
            fcx, fcy = round(cx), round(cy - 0.2 * r)
            c.face(fcx, fcy, fr, _SKIN[int(rng.integers(len(_SKIN)))])
            sal += 1.0 * _gaussian((h, w), fcx, fcy, 0.9 * fr, 0.9 * fr)
    return c.img, _finalise_map(sal, sigma=0.02 * w)


def sample_gaze(rng: np.random.Generator, sal: np.ndarray, n_subjects: int) -> list[Gaze]:
    """Simulated mouse-tracking per subject from a saliency map (H, W).

    Each subject gets 3-8 fixations drawn with probability proportional to ``sal`` plus ~2 px jitter, and
    raw ``location`` samples = dwell samples at each fixation plus interpolated samples between them.
    Returns per subject ``location`` (N, 2), ``timestamp`` (N, 1) in ms, ``fixations`` (M, 2), all float64
    integer-valued, coordinates ``[x, y]`` 1-based with 1 <= x <= W, 1 <= y <= H.
    """
    h, w = sal.shape
    cdf = np.cumsum(sal.astype(np.float64).ravel() + 1e-6)
    cdf /= cdf[-1]
    lo, hi = np.array([1.0, 1.0]), np.array([float(w), float(h)])

    def to_xy(pts: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(pts), lo, hi)

    gaze: list[Gaze] = []
    for _ in range(n_subjects):
        idx = np.minimum(np.searchsorted(cdf, rng.random(int(rng.integers(3, 9))), side="right"), h * w - 1)
        rows, cols = np.divmod(idx, w)
        fix = to_xy(np.stack([cols + 1.0, rows + 1.0], 1) + rng.normal(0.0, 2.0, (idx.size, 2)))
        samples = []
        for i, point in enumerate(fix):
            samples.append(point + rng.normal(0.0, 1.0, (int(rng.integers(2, 5)), 2)))  # dwell
            if i + 1 < len(fix):
                t = rng.uniform(0.1, 0.9, int(rng.integers(2, 5)))[:, None]
                t.sort(axis=0)
                samples.append(point + t * (fix[i + 1] - point) + rng.normal(0.0, 1.5, (t.size, 2)))
        loc = to_xy(np.concatenate(samples))
        ts = np.rint(rng.uniform(0, 200) + np.cumsum(rng.uniform(8, 20, len(loc))))[:, None]
        gaze.append((loc, ts, fix))
    return gaze


def write_fixations_mat(path: Path, stem: str, shape: tuple[int, int], gaze: Sequence[Gaze]) -> None:
    """Write a SALICON-style ``.mat``: ``image`` (str), ``resolution`` uint16 [[H, W]], ``gaze`` (S, 1).

    The MAT header's creation date is replaced by a fixed text so the file bytes are deterministic.
    """
    struct = np.empty((len(gaze), 1), dtype=[("location", object), ("timestamp", object), ("fixations", object)])
    for i, (loc, ts, fix) in enumerate(gaze):
        struct[i, 0] = (loc.astype(np.float64), ts.astype(np.float64), fix.astype(np.float64))
    buf = io.BytesIO()
    resolution = np.array([shape], dtype=np.uint16)
    scipy.io.savemat(buf, {"image": stem, "resolution": resolution, "gaze": struct}, do_compression=False)
    data = bytearray(buf.getvalue())
    data[:116] = b"MATLAB 5.0 MAT-file, written by umsi.data.synthetic".ljust(116)
    _save_atomic(path, bytes(data))


# ---------------------------------------------------------------------------------------- generation


def _prune(folder: Path, keep: set[str]) -> None:
    """Remove files this module would have written (name pattern) that are not in ``keep``."""
    for f in folder.iterdir():
        if f.is_file() and f.name not in keep and _OWN_FILE.match(f.name):
            f.unlink()


def _write_salicon(root: Path, seed: int, counts: dict[str, int], size: tuple[int, int], bar: tqdm) -> None:
    h, w = size
    for split, n in counts.items():
        dirs = {kind: root / kind / split for kind in ("images", "maps", "fixations")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rng = _item_rng(seed, "salicon", split, i)
            stem = f"COCO_{split}2014_{i + 1:012d}"
            img, sal = make_natural(rng, h, w)
            _save_atomic(dirs["images"] / f"{stem}.jpg", _encode_image(img, ".jpg"))
            _save_atomic(dirs["maps"] / f"{stem}.png", _encode_image(sal, ".png"))
            write_fixations_mat(dirs["fixations"] / f"{stem}.mat", stem, (h, w), sample_gaze(rng, sal, 12))
            bar.update()
        for kind, d in dirs.items():
            ext = {"images": ".jpg", "maps": ".png", "fixations": ".mat"}[kind]
            _prune(d, {f"COCO_{split}2014_{i + 1:012d}{ext}" for i in range(n)})


def _write_imp1k(root: Path, seed: int, per_class: int, val_per_class: int, bar: tqdm) -> None:
    train: list[str] = []
    test: list[str] = []
    for cls in IMP1K_CLASSES:
        ext = _IMP1K_SPECS[cls][1]
        img_dir, map_dir = root / "imgs" / cls, root / "maps" / cls
        img_dir.mkdir(parents=True, exist_ok=True)
        map_dir.mkdir(parents=True, exist_ok=True)
        names = [f"{cls}_{i:04d}" for i in range(per_class)]
        for i, name in enumerate(names):
            img, imp = make_design(_item_rng(seed, "imp1k", cls, i), cls)
            _save_atomic(img_dir / f"{name}{ext}", _encode_image(img, ext))
            _save_atomic(map_dir / f"{name}.png", _encode_image(imp, ".png"))
            bar.update()
        _prune(img_dir, {f"{n}{ext}" for n in names})
        _prune(map_dir, {f"{n}.png" for n in names})
        held_out = set(_item_rng(seed, "imp1k-split", cls, 0).permutation(per_class)[:val_per_class].tolist())
        for i, name in enumerate(names):
            (test if i in held_out else train).append(f"{cls}/{name}{ext}")
    _save_atomic(root / _SPLIT_FILE, json.dumps([train, test], indent=1).encode())


def _gdi_name(rng: np.random.Generator) -> str:
    """GDI-style stem ``<6-digit id>_<10-digit flickr id>_<10 hex secret>_m`` drawn from ``rng``."""
    secret = "".join(f"{b:02x}" for b in rng.integers(0, 256, 5))
    return f"{int(rng.integers(10**6)):06d}_{int(rng.integers(10**9, 10**10))}_{secret}_m"


def _write_gdi(root: Path, seed: int, counts: dict[str, int], bar: tqdm) -> None:
    """GDI-style split folders of advertisements / movie posters with their importance maps; the list files
    (``train.txt``, ``valid.txt``) are written last, so their presence means the GDI part is complete."""
    lists: dict[str, list[str]] = {}
    for split, n in counts.items():
        img_dir, map_dir = root / f"gd_{split}", root / f"gd_imp_{split}"
        img_dir.mkdir(parents=True, exist_ok=True)
        map_dir.mkdir(parents=True, exist_ok=True)
        names = []
        for i in range(n):
            rng = _item_rng(seed, "gdi", split, i)
            name = _gdi_name(rng)
            img, imp = make_design(rng, _GDI_CLASSES[int(rng.integers(len(_GDI_CLASSES)))])
            _save_atomic(img_dir / f"{name}.jpg", _encode_image(img, ".jpg"))
            _save_atomic(map_dir / f"{name}.png", _encode_image(imp, ".png"))
            names.append(name)
            bar.update()
        _prune(img_dir, {f"{name}.jpg" for name in names})
        _prune(map_dir, {f"{name}.png" for name in names})
        lists[split] = names
    for split, names in lists.items():
        _save_atomic(root / _GDI_LISTS[split], "".join(f"{name}\n" for name in names).encode())


def _has_gdi(out: Path) -> bool:
    """Whether ``out/gdi`` is complete (both list files, which :func:`_write_gdi` writes last, exist)."""
    return all((out / "gdi" / name).is_file() for name in _GDI_LISTS.values())


def generate(
    out_dir: str | Path,
    *,
    seed: int = 0,
    salicon_train: int = 400,
    salicon_val: int = 50,
    imp1k_per_class: int = 48,
    imp1k_val_per_class: int = 8,
    gdi_train: int = 40,
    gdi_val: int = 10,
    salicon_size: tuple[int, int] = (240, 320),
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write the synthetic SALICON (``<out>/salicon``), Imp1k (``<out>/imp1k``) and GDI (``<out>/gdi``) trees;
    return ``out_dir``.

    ``salicon_size`` is (H, W) in pixels. Output is deterministic for the arguments. Does nothing when
    ``<out>/.complete`` exists and ``overwrite`` is False, except that a tree without the GDI part gets only
    that part added (other files untouched); the marker is (re)written last.
    """
    out = Path(out_dir)
    marker = out / _MARKER
    gdi_counts = {"train": gdi_train, "val": gdi_val}
    if marker.exists() and not overwrite:
        if _has_gdi(out):
            log.info("synthetic data already present in %s (%s exists)", out, _MARKER)
            return out
        if min(gdi_train, gdi_val) < 0 or seed < 0:
            raise ValueError("counts and seed must be non-negative")
        log.info("adding the missing GDI part to the synthetic data in %s", out)
        with tqdm(total=gdi_train + gdi_val, disable=not progress, desc="synthetic GDI", unit="img") as bar:
            _write_gdi(out / "gdi", seed, gdi_counts, bar)
        return out
    if min(salicon_train, salicon_val, imp1k_val_per_class, gdi_train, gdi_val) < 0 or seed < 0:
        raise ValueError("counts and seed must be non-negative")
    if not 0 <= imp1k_val_per_class <= imp1k_per_class:
        raise ValueError("imp1k_val_per_class must be within [0, imp1k_per_class]")
    out.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    total = salicon_train + salicon_val + imp1k_per_class * len(IMP1K_CLASSES) + gdi_train + gdi_val
    with tqdm(total=total, disable=not progress, desc="synthetic data", unit="img") as bar:
        counts = {"train": salicon_train, "val": salicon_val}
        _write_salicon(out / "salicon", seed, counts, tuple(salicon_size), bar)
        _write_imp1k(out / "imp1k", seed, imp1k_per_class, imp1k_val_per_class, bar)
        _write_gdi(out / "gdi", seed, gdi_counts, bar)
    _save_atomic(marker, b"")
    return out


def describe(out: str | Path) -> str:
    """Counts of the files present under ``out``: one line."""
    out = Path(out)
    sal = {s: len(list((out / "salicon" / "images" / s).glob("*.jpg"))) for s in ("train", "val")}
    split = json.loads((out / "imp1k" / _SPLIT_FILE).read_text())
    gdi = {s: len((out / "gdi" / name).read_text().split()) for s, name in _GDI_LISTS.items()}
    return (
        f"SALICON ({SALICON_CLASS}): {sal['train']} train / {sal['val']} val; "
        f"Imp1k ({len(IMP1K_CLASSES)} classes): {len(split[0])} train / {len(split[1])} test; "
        f"GDI: {gdi['train']} train / {gdi['val']} val"
    )
