"""Preprocessing: official letterboxing, BGR/Caffe-mean or timm normalisation, fixation maps, joint
augmentation (umsi-reference §3). Arrays are NumPy HWC uint8 in, tensors CHW float32 out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from umsi.data.layouts import inside_image
from umsi.models.card import (
    CAFFE_BGR_MEAN,
    DEFAULT_INPUT_SIZE,
    DEFAULT_OUTPUT_SCALE,
    Preprocessing,
    get_preprocessing,
)

if TYPE_CHECKING:  # albumentations loads when an augmentation is built: inference never needs it
    import albumentations as A

__all__ = ["CAFFE_BGR_MEAN"]  # re-exported: the official means (their home is umsi.models.card)


@dataclass(frozen=True)
class LetterboxGeometry:
    """Where a (src_h, src_w) array lands inside a (dst_h, dst_w) canvas: resized to (new_h, new_w) and
    pasted at (top, left), zero bars elsewhere. Official rule: the relatively longer side fills the canvas,
    the other is ⌊side·scale⌋ and centred with ``//``."""

    new_h: int
    new_w: int
    top: int
    left: int

    @classmethod
    def fit(cls, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> LetterboxGeometry:
        (src_h, src_w), (dst_h, dst_w) = src_hw, dst_hw
        if src_h / dst_h > src_w / dst_w:
            new_h, new_w = dst_h, max(1, min(dst_w, (src_w * dst_h) // src_h))
        else:
            new_h, new_w = max(1, min(dst_h, (src_h * dst_w) // src_w)), dst_w
        return cls(new_h, new_w, (dst_h - new_h) // 2, (dst_w - new_w) // 2)


def letterbox(array: np.ndarray, dst_hw: tuple[int, int]) -> np.ndarray:
    """Resize (bilinear) and centre ``array`` (H, W[, C]) on a zero canvas of ``dst_hw``, keeping its aspect."""
    geo = LetterboxGeometry.fit(array.shape[:2], dst_hw)
    resized = cv2.resize(array, (geo.new_w, geo.new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.zeros((*dst_hw, *array.shape[2:]), dtype=array.dtype)
    canvas[geo.top : geo.top + geo.new_h, geo.left : geo.left + geo.new_w] = resized.reshape(
        geo.new_h, geo.new_w, *array.shape[2:]
    )
    return canvas


def unletterbox(saliency: np.ndarray, original_hw: tuple[int, int]) -> np.ndarray:
    """Bring a map predicted in the letterboxed frame (Ho, Wo) back to the original (H, W), as the official
    ``postprocess_predictions``: scale the canvas so the image's relatively longer side fits, then crop the bars.

    If H/Ho > W/Wo the canvas is resized to (H, ⌊Wo·H/Ho⌋) and columns [(that − W)//2, +W) are kept; otherwise to
    (⌊Ho·W/Wo⌋, W) and the rows are cropped the same way. Bilinear (``cv2.INTER_LINEAR``), float32 in and out.
    """
    out_h, out_w = saliency.shape[:2]
    height, width = original_hw
    saliency = np.asarray(saliency, dtype=np.float32)
    if height / out_h > width / out_w:
        new_w = max(width, (out_w * height) // out_h)
        resized = cv2.resize(saliency, (new_w, height), interpolation=cv2.INTER_LINEAR)
        left = (new_w - width) // 2
        return resized[:, left : left + width]
    new_h = max(height, (out_h * width) // out_w)
    resized = cv2.resize(saliency, (width, new_h), interpolation=cv2.INTER_LINEAR)
    top = (new_h - height) // 2
    return resized[top : top + height]


def fixation_pixels(
    points_xy: np.ndarray, src_hw: tuple[int, int], dst_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) int arrays: where the fixations land in a (dst_h, dst_w) canvas, placed as the letterbox
    places the image.

    points_xy: (N, 2) 0-based (x, y) pixel coordinates in the (src_h, src_w) source image. Points outside it are
    dropped (:func:`~umsi.data.layouts.inside_image`); each other point maps to (round(y·new_h/src_h),
    round(x·new_w/src_w)) clamped to the resized area, as the official code does.
    """
    geo = LetterboxGeometry.fit(src_hw, dst_hw)
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    pts = pts[inside_image(pts, src_hw)]
    rows = np.clip(np.round(pts[:, 1] * geo.new_h / src_hw[0]), 0, geo.new_h - 1).astype(int) + geo.top
    cols = np.clip(np.round(pts[:, 0] * geo.new_w / src_hw[1]), 0, geo.new_w - 1).astype(int) + geo.left
    return rows, cols


def fixation_map(points_xy: np.ndarray, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> np.ndarray:
    """Binary (dst_h, dst_w) float32 map with a 1 at each fixation inside the source image, placed as the
    letterbox places the image (:func:`fixation_pixels`)."""
    out = np.zeros(dst_hw, dtype=np.float32)
    out[fixation_pixels(points_xy, src_hw, dst_hw)] = 1.0
    return out


def normalize_image(image_bgr: np.ndarray, preprocessing: str | Preprocessing = "official") -> torch.Tensor:
    """(H, W, 3) uint8 BGR → (3, H, W) float32 by ``preprocessing`` (a registered name or a
    :class:`~umsi.models.card.Preprocessing`): reorder to its channel order, divide by its pixel scale, subtract
    its mean, divide by its std. ``official``: BGR minus Caffe means, no scaling (range about [−124, 152]);
    ``timm``: RGB / 255, then (x − 0.5) / 0.5. ``ConfigError`` for an unknown name."""
    spec = get_preprocessing(preprocessing)
    x = (image_bgr if spec.channel_order == "BGR" else image_bgr[..., ::-1]).astype(np.float32)
    if spec.pixel_scale != 1.0:
        x = x / np.float32(spec.pixel_scale)
    x = x - np.asarray(spec.mean, dtype=np.float32)
    if spec.std != (1.0, 1.0, 1.0):
        x = x / np.asarray(spec.std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def denormalize_image(image: torch.Tensor, preprocessing: str | Preprocessing = "official") -> np.ndarray:
    """Inverse of :func:`normalize_image` for display: (3, H, W) → (H, W, 3) uint8 RGB."""
    spec = get_preprocessing(preprocessing)
    x = image.detach().float().cpu().numpy().transpose(1, 2, 0)
    x = (x * np.asarray(spec.std, dtype=np.float32) + np.asarray(spec.mean, dtype=np.float32)) * spec.pixel_scale
    rgb = x[..., ::-1] if spec.channel_order == "BGR" else x
    return np.clip(rgb, 0, 255).astype(np.uint8)


def build_augmentation(
    flip_p: float = 0.5,
    affine_p: float = 0.4,
    rotate: float = 15.0,
    scale: tuple[float, float] = (0.9, 1.1),
    translate: float = 0.05,
    crop_pad_p: float = 0.4,
    crop_pad: float = 0.05,
    seed: int | None = 0,
) -> A.Compose:
    """Joint augmentation at the source resolution: the same flip / small affine / crop-or-pad is applied to
    the image, its saliency map and its fixation points. Call it as ``aug(image=..., saliency=..., content=...,
    keypoints=...)``: the map is a continuous target of type ``image`` (``additional_targets``), so it is
    resampled bilinearly exactly like the image (a ``mask`` would go through nearest-neighbour); fixations are
    albumentations keypoints (pixel-index ``xy``), moved with the image. ``content`` (optional, type ``image``)
    is an all-255 map of the source: afterwards it shows where the source pixels landed, which
    :class:`SampleTransform` uses to drop the fixations that left the image (:func:`keep_on_content`).

    albumentations keeps its own random state (global seeds do not reach it): ``seed`` makes it reproducible,
    and :func:`seed_augmentation_worker` gives each DataLoader worker its own stream."""
    import albumentations as A

    return A.Compose(
        [
            A.HorizontalFlip(p=flip_p),
            A.Affine(
                rotate=(-rotate, rotate),
                scale=scale,
                translate_percent=(-translate, translate),
                interpolation=cv2.INTER_LINEAR,
                p=affine_p,
            ),
            A.CropAndPad(percent=(-crop_pad, crop_pad), keep_size=True, interpolation=cv2.INTER_LINEAR, p=crop_pad_p),
        ],
        additional_targets={"saliency": "image", "content": "image"},
        keypoint_params=A.KeypointParams(format="xy", remove_invisible=True),
        seed=seed,
    )


def seed_augmentation_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: reseed every augmentation of the worker's dataset from the worker's torch
    seed (distinct per worker and epoch, reproducible under a global seed), then apply Lightning's seeding."""
    from lightning_fabric.utilities.seed import pl_worker_init_function
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    datasets = getattr(info.dataset, "datasets", [info.dataset]) if info is not None else []
    for dataset in datasets:
        augmentation = getattr(getattr(dataset, "transform", None), "augmentation", None)
        if augmentation is not None:
            augmentation.set_random_seed(torch.initial_seed() % 2**32)
    pl_worker_init_function(worker_id)


def keep_on_content(points_xy: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The augmented fixations (N, 2) 0-based pixel-index (x, y) whose pixel still shows the source image: inside
    the frame and at least half covered by source content (``content`` >= 128, the all-255 map augmented with the
    image, 0 where padding or the affine's border came in).

    albumentations keeps a keypoint while 0 <= x < W, half a pixel beyond the last pixel centre (W − 1), so after a
    rotation followed by a pad such a point can sit on the padding next to its pixel; this drops it, as a fixation
    that left the image."""
    points = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    height, width = content.shape[:2]
    cols, rows = np.floor(points[:, 0] + 0.5).astype(int), np.floor(points[:, 1] + 0.5).astype(int)
    keep = (cols >= 0) & (rows >= 0) & (cols < width) & (rows < height)
    keep[keep] = content[rows[keep], cols[keep]] >= 128
    return points[keep]


class SampleTransform:
    """Turns one (image, map, fixations) triple into network tensors.

    image (H, W, 3) uint8 BGR, saliency (h, w) uint8 (resized bilinearly to H×W if it differs), fixations (N, 2)
    0-based x, y in the image (points outside it are dropped) → {"image": (3, *input_size), "saliency":
    (1, *output_size) in [0, 1], "fixations": (1, *output_size) binary}. ``output_size`` = input_size × output_scale.
    """

    def __init__(
        self,
        input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
        output_scale: float = DEFAULT_OUTPUT_SCALE,
        preprocessing: str | Preprocessing = "official",
        augmentation: A.Compose | None = None,
    ) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.output_size = (round(input_size[0] * output_scale), round(input_size[1] * output_scale))
        self.preprocessing = get_preprocessing(preprocessing)
        self.augmentation = augmentation

    def __call__(self, image: np.ndarray, saliency: np.ndarray, fixations: np.ndarray) -> dict[str, Any]:
        if saliency.shape[:2] != image.shape[:2]:
            saliency = cv2.resize(saliency, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
        if self.augmentation is not None:
            points = np.asarray(fixations, dtype=np.float32).reshape(-1, 2)
            points = points[inside_image(points, image.shape[:2])]  # albumentations refuses points outside
            content = np.full(image.shape[:2], 255, np.uint8)
            out = self.augmentation(image=image, saliency=saliency, content=content, keypoints=points)
            image, saliency = out["image"], out["saliency"]
            fixations = keep_on_content(np.asarray(out["keypoints"])[:, :2], out["content"])
        src_hw = image.shape[:2]
        saliency_out = letterbox(saliency, self.output_size).astype(np.float32) / 255.0
        return {
            "image": normalize_image(letterbox(image, self.input_size), self.preprocessing),
            "saliency": torch.from_numpy(saliency_out)[None],
            "fixations": torch.from_numpy(fixation_map(fixations, src_hw, self.output_size))[None],
        }
