"""Pictures of predictions: colour maps, overlays, and the labelled [image | ground truth | prediction] grid that the
validation panels and the evaluation report share.

The grid is drawn with matplotlib on its Agg canvas (no display, no pyplot state); matplotlib is imported inside the
functions that draw, so modules that only need :func:`heatmap_rgb` / :func:`overlay_rgb` stay light.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAP_STYLES = ("map", "overlay")
GRID_COLUMNS = ("image", "ground truth", "prediction")
OVERLAY_ALPHA = 0.5
MAP_SCALE_LABEL = "saliency / importance,\nmin–max scaled per map (0–1)"


CLASS_TITLES = {"mobile_uis": "Mobile UIs", "natural_images": "Natural Images"}


def class_title(name: str) -> str:
    """Class folder name → display title (``movie_posters`` → ``Movie Posters``)."""
    return CLASS_TITLES.get(name, name.replace("_", " ").title())


def colormap_code(name: str) -> int:
    """OpenCV colormap by name (``jet``, ``turbo``, ``inferno``, ``viridis`` …)."""
    code = getattr(cv2, f"COLORMAP_{name.upper()}", None)
    if code is None:
        names = sorted(k.removeprefix("COLORMAP_").lower() for k in dir(cv2) if k.startswith("COLORMAP_"))
        raise ValueError(f"colormap={name!r} is not an OpenCV colormap; choose one of {', '.join(names)}")
    return code


def minmax_scaled(saliency: np.ndarray) -> np.ndarray:
    """(H, W) map → float32 in [0, 1] by min–max scaling (a constant map becomes all zeros), the scaling the
    ``umsi`` metric convention applies before CC and KL."""
    x = np.asarray(saliency, dtype=np.float32)
    return (x - x.min()) / max(float(x.max() - x.min()), 1e-12)


def heatmap_rgb(saliency: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """(H, W) map → (H, W, 3) uint8 RGB colour map after min–max scaling (a constant map gets the lowest colour)."""
    x = minmax_scaled(saliency)
    return np.ascontiguousarray(cv2.applyColorMap((x * 255).astype(np.uint8), colormap_code(colormap))[..., ::-1])


def overlay_rgb(image_rgb: np.ndarray, saliency: np.ndarray, alpha: float = 0.5, colormap: str = "jet") -> np.ndarray:
    """The coloured map blended over the image (same (H, W)): (1 − alpha)·image + alpha·heatmap, uint8 RGB."""
    return cv2.addWeighted(image_rgb, 1.0 - alpha, heatmap_rgb(saliency, colormap), alpha, 0)


@dataclass(frozen=True)
class PredictionRow:
    """One row of a prediction grid: the image (H, W, 3) uint8 RGB, the ground-truth map and the prediction (2-D,
    any range; both are drawn at the ground truth's size after min–max scaling) and the row's label (name, scores,
    classes), drawn at its left."""

    image_rgb: np.ndarray
    target: np.ndarray
    pred: np.ndarray
    label: str


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


def _short(text: str, limit: int = 26) -> str:
    """``text`` cut in the middle to at most ``limit`` characters (long file names in row labels)."""
    return text if len(text) <= limit else text[: limit // 2 - 1] + "…" + text[-(limit // 2) :]


def row_label(
    name: str,
    cc: float | None = None,
    kl: float | None = None,
    true_class: str | None = None,
    predicted_class: str | None = None,
) -> str:
    """The text at the left of a row: the image name, ``CC 0.812 · KL 0.431 nats`` and, on class-labelled data,
    ``true: …`` / ``predicted: …`` (marked ✗ when they differ)."""
    lines = [_short(name)]
    scores = ([f"CC {cc:.3f}"] if cc is not None else []) + ([f"KL {kl:.3f} nats"] if kl is not None else [])
    if scores:
        lines.append(" · ".join(scores))
    if true_class is not None:
        lines.append(f"true: {true_class}")
    if predicted_class is not None:
        lines.append(f"predicted: {predicted_class}" + (" ✗" if predicted_class != true_class else " ✓"))
    return "\n".join(lines)


def _display_size(shape: tuple[int, ...], longest: int) -> tuple[int, int]:
    """(width, height) of a picture of ``shape`` scaled down so its longer side is at most ``longest`` pixels."""
    h, w = shape[:2]
    scale = min(1.0, longest / max(h, w))
    return max(1, round(w * scale)), max(1, round(h * scale))


# the grid's fixed layout in inches (no layout engine: the positions are known, and drawing is 2–3× faster)
_TEXT_W, _GAP, _BAR_W, _BAR_LABEL_W, _TOP, _BOTTOM = 2.3, 0.08, 0.16, 0.75, 0.56, 0.12


def prediction_grid(
    rows: Sequence[PredictionRow],
    title: str,
    style: str = "map",
    colormap: str = "jet",
    row_height: float = 1.7,
    width: float = 9.0,
) -> Figure:
    """A matplotlib figure of labelled rows [image | ground truth | prediction] under ``title``, with column titles
    and one colour bar for both maps: ground truth and prediction are drawn the same way (``style="map"``: the
    min–max scaled map; ``"overlay"``: that map over the image at alpha 0.5) with one colour scale (0–1), at the
    ground truth's aspect ratio. ``row_height`` and ``width`` in inches. Raises ValueError for an unknown style or
    colormap, or no rows."""
    from matplotlib import colormaps
    from matplotlib.colorbar import Colorbar
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    if style not in MAP_STYLES:
        raise ValueError(f"style={style!r}: choose one of {MAP_STYLES}")
    if colormap not in colormaps:
        raise ValueError(f"colormap={colormap!r} is not a matplotlib colormap (e.g. jet, turbo, inferno, viridis)")
    if not rows:
        raise ValueError(f"{title}: no rows to draw")
    norm = Normalize(0.0, 1.0)
    height = _TOP + row_height * len(rows) + _BOTTOM
    fig = Figure(figsize=(width, height))
    cell_w = (width - _TEXT_W - _GAP - _BAR_W - _BAR_LABEL_W - 3 * _GAP) / 3
    longest = round(2 * max(cell_w, row_height) * 100)  # enough pixels for 200 dpi; big photos are not drawn whole

    def box(left: float, top: float, w: float, h: float) -> list[float]:  # inches from the top left → fractions
        return [left / width, 1 - (top + h) / height, w / width, h / height]

    for r, row in enumerate(rows):
        top = _TOP + r * row_height
        size = _display_size(row.target.shape, longest)
        image = cv2.resize(row.image_rgb, size, interpolation=cv2.INTER_AREA)
        maps = [
            cv2.resize(np.asarray(m, np.float32), size, interpolation=cv2.INTER_AREA) for m in (row.target, row.pred)
        ]
        y = 1 - (top + row_height / 2) / height
        fig.text((_TEXT_W - _GAP) / width, y, row.label, ha="right", va="center", fontsize=8.5)
        for c in range(3):
            ax = fig.add_axes(box(_TEXT_W + c * (cell_w + _GAP), top + _GAP / 2, cell_w, row_height - _GAP))
            if c == 0 or style == "overlay":
                ax.imshow(image)
            if c > 0:
                alpha = OVERLAY_ALPHA if style == "overlay" else 1.0
                ax.imshow(minmax_scaled(maps[c - 1]), cmap=colormap, norm=norm, alpha=alpha)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(GRID_COLUMNS[c], fontsize=10)
    bar_h = min(row_height * len(rows), 5.0) - _GAP
    bar_top = _TOP + (row_height * len(rows) - bar_h) / 2
    bar_ax = fig.add_axes(box(width - _BAR_W - _BAR_LABEL_W, bar_top, _BAR_W, bar_h))
    bar = Colorbar(bar_ax, cmap=colormaps[colormap], norm=norm)
    bar.ax.tick_params(labelsize=8)
    bar.set_label(MAP_SCALE_LABEL + (" over the image, α 0.5" if style == "overlay" else ""), fontsize=8)
    fig.suptitle(title, fontsize=11, y=1 - 0.1 / height, va="top")
    return fig


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render a matplotlib figure to PNG bytes on the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def figure_rgb(fig: Figure, dpi: int = 100) -> np.ndarray:
    """Render a matplotlib figure to an (H, W, 3) uint8 RGB array on the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(dpi)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])
