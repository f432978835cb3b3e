"""Post-processing of predicted saliency maps, one path for every caller: the optional Gaussian blur, then back from
the letterboxed network frame to each image's own size (:func:`umsi.data.transforms.unletterbox`).

:class:`umsi.inference.predictor.Predictor` (``umsi.load(...).predict``), umsi-eval's scoring
(:mod:`umsi.evaluation.scoring`) and the report's figures (:mod:`umsi.evaluation.visual_report`) all call
:func:`postprocess_maps`, so a map is blurred and un-letterboxed the same way wherever it is shown or scored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from umsi.data.transforms import unletterbox


def _symmetric_indices(size: int, radius: int, device: torch.device) -> torch.Tensor:
    """Indices for padding ``radius`` on both sides with half-sample symmetric reflection (d c b a | a b c d)."""
    idx = torch.arange(-radius, size + radius, device=device) % (2 * size)
    return torch.where(idx >= size, 2 * size - 1 - idx, idx)


def gaussian_blur(pred: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian blur of each map, σ in pixels: (B, H, W) or (B, 1, H, W) → same shape and dtype.

    Kernel radius ⌊truncate·σ + 0.5⌋, weights normalised to sum 1; padding is half-sample symmetric reflection
    (d c b a | a b c d). This equals ``scipy.ndimage.gaussian_filter(x, sigma, mode="reflect", truncate=4.0)``
    per image, which is what the authors' notebooks apply (σ = 7) before evaluation. σ ≤ 0 returns a copy.
    Raises ``ValueError`` for any other shape."""
    if sigma <= 0:
        return pred.clone()
    shape = pred.shape
    if pred.dim() == 4 and pred.shape[1] == 1:
        x = pred[:, 0]
    elif pred.dim() == 3:
        x = pred
    else:
        raise ValueError(f"expected maps of shape (B, H, W) or (B, 1, H, W), got {tuple(pred.shape)}")
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    x = x.to(dtype)[:, None]  # (B, 1, H, W)
    height, width = x.shape[-2:]
    radius = int(truncate * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = x[..., _symmetric_indices(height, radius, x.device), :]
    x = x[..., _symmetric_indices(width, radius, x.device)]
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    return x.reshape(shape).to(pred.dtype if pred.is_floating_point() else dtype)


def postprocess_maps(
    maps: torch.Tensor, sizes: Sequence[tuple[int, int] | None], blur_sigma: float | None = None
) -> list[np.ndarray]:
    """Network maps → one (H, W) float32 array per image: blurred with σ = ``blur_sigma`` output pixels
    (:func:`gaussian_blur`; None or 0: no blur), then un-letterboxed to ``sizes[i]`` = (H, W), the size of image i's
    ground truth or of the image itself; ``None`` keeps the letterboxed frame.

    ``maps``: (B, Ho, Wo) or (B, 1, Ho, Wo), on any device (blurred there, then moved to the CPU), any float dtype
    (computed in float32). Values are not rescaled. Raises ``ValueError`` when ``sizes`` does not hold B entries."""
    if maps.dim() == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if maps.dim() != 3:
        raise ValueError(f"expected maps of shape (B, H, W) or (B, 1, H, W), got {tuple(maps.shape)}")
    if len(sizes) != len(maps):
        raise ValueError(f"{len(sizes)} output sizes for {len(maps)} maps")
    maps = maps.detach().float()
    if blur_sigma:
        maps = gaussian_blur(maps, float(blur_sigma))
    arrays = maps.cpu().numpy()
    return [a if size is None else unletterbox(a, size) for a, size in zip(arrays, sizes, strict=True)]


__all__ = ["gaussian_blur", "postprocess_maps"]
