"""Map utilities shared by the losses, the evaluation metrics and their callers: the centre-bias baseline, fixations
as maps or as lists of fixated pixels, and the (B, H, W) / (B, N) views the metrics work on.

Fixations are given either as maps (B, H, W) / (B, 1, H, W) or as a list of B point arrays/tensors of shape (N_i, 2)
holding 0-based (x, y) pixel coordinates (truncated to int, as pysaliency's ``x_int``; out-of-range points raise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from umsi.metrics.loss_terms import _safe_divide
from umsi.metrics.threads import INLINE_PIXELS

Fixations = torch.Tensor | Sequence[torch.Tensor | np.ndarray]


def center_bias_map(height: int, width: int, sigma: float = 0.25) -> torch.Tensor:
    """Centred anisotropic Gaussian (H, W), max 1, std = ``sigma`` × each side: the classic baseline."""
    ys = torch.arange(height, dtype=torch.float32) - (height - 1) / 2
    xs = torch.arange(width, dtype=torch.float32) - (width - 1) / 2
    gy = torch.exp(-0.5 * (ys / (sigma * height)) ** 2)
    gx = torch.exp(-0.5 * (xs / (sigma * width)) ** 2)
    return gy[:, None] * gx[None, :]


def _batch_maps(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W) or (B, 1, H, W) → (B, H, W)."""
    if x.dim() == 4 and x.shape[1] == 1:
        return x[:, 0]
    if x.dim() != 3:
        raise ValueError(f"expected maps of shape (B, H, W) or (B, 1, H, W), got {tuple(x.shape)}")
    return x


def fixations_to_map(
    fixations: Fixations, height: int, width: int, *, binary: bool = True, device: torch.device | None = None
) -> torch.Tensor:
    """Fixations → (B, H, W) float64 map.

    A tensor (B, H, W) / (B, 1, H, W) is taken as a fixation map (binarised to F > 0 if ``binary``). A list of
    B point arrays (N_i, 2) of 0-based (x, y) pixel coordinates (truncated to int) becomes a count map (number of
    fixations per pixel) or, with ``binary``, the 0/1 map of fixated pixels (duplicates collapse, as MIT).

    Points must lie inside the map, 0 <= x < W and 0 <= y < H (the rule :func:`umsi.data.layouts.inside_image`
    applies when fixation files are read, and the evaluation converts them into the map's frame); any other point
    raises ``ValueError``."""
    if isinstance(fixations, torch.Tensor):
        fmap = _batch_maps(fixations).to(device=device or fixations.device, dtype=torch.float64)
        if fmap.shape[-2:] != (height, width):
            raise ValueError(f"fixation map size {tuple(fmap.shape[-2:])} differs from the map size {(height, width)}")
        return (fmap > 0).double() if binary else fmap
    out = torch.zeros(len(fixations), height * width, dtype=torch.float64, device=device)
    for i, points in enumerate(fixations):
        pts = torch.as_tensor(np.asarray(points) if not isinstance(points, torch.Tensor) else points)
        pts = pts.reshape(-1, 2).to(device=out.device, dtype=torch.float64)
        if pts.numel() == 0:
            continue
        inside = (pts[:, 0] >= 0) & (pts[:, 1] >= 0) & (pts[:, 0] < width) & (pts[:, 1] < height)
        if not bool(inside.all()):
            x_bad, y_bad = pts[~inside][0].tolist()
            raise ValueError(
                f"image {i}: {int((~inside).sum())} fixations outside the {width}×{height} (W×H) map, e.g. "
                f"(x, y) = ({x_bad:g}, {y_bad:g}); points are 0-based and need 0 <= x < W, 0 <= y < H: drop the "
                "others or convert them into this map's frame first"
            )
        x, y = pts[:, 0].trunc().long(), pts[:, 1].trunc().long()
        out[i].index_add_(0, y * width + x, torch.ones_like(pts[:, 0]))
    out = out.reshape(-1, height, width)
    return (out > 0).double() if binary else out


def other_image_fixations(fixations: torch.Tensor) -> torch.Tensor:
    """(B, H, W) fixation maps → (B, H, W) binary maps whose image b holds the union of the fixated pixels of all
    *other* images of the batch: sAUC negatives for same-sized images (the MIT ``otherMap``)."""
    fmap = (_batch_maps(fixations) > 0).double()
    return ((fmap.sum(dim=0, keepdim=True) - fmap) > 0).double()


def _rows(x: torch.Tensor) -> torch.Tensor:
    """Maps (B, H, W) or (B, 1, H, W) → (B, N) in float32 or float64, without a copy where the dtype allows."""
    x = _batch_maps(x.detach() if x.requires_grad else x)
    x = x.reshape(x.shape[0], -1)
    return x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float64)


def _on(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device`` (no call when it is there already: these small calls add up on tiny maps)."""
    return x if x.device == device else x.to(device)


def _pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(prediction, target) → two (B, N) row views of the same shape (ValueError otherwise)."""
    p, g = _batch_maps(pred), _batch_maps(target)
    if g.shape != p.shape:
        raise ValueError(f"target {tuple(g.shape)} and prediction {tuple(p.shape)} differ in shape")
    return _rows(p), _on(_rows(g), p.device)


_SAME_WIDTH_INT = {
    torch.float64: torch.int64,
    torch.float32: torch.int32,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}


def _candidate_runs(runs: torch.Tensor) -> torch.Tensor:
    """(R, run) slices of a fixation map → (R,) bool: the runs that may hold an entry > 0 (all that do, and few
    others), from one integer max over the map, the fastest reduction there is for any dtype (issue 27):

    * floats are read as signed integers of their width: every float > 0 (and a NaN with sign bit 0) is an integer
      > 0, every float ≤ 0 (−0.0 included) an integer ≤ 0; the caller then keeps the entries that really are > 0;
    * bool maps are read 8 entries at a time as int64 where the layout allows (bytes 0/1: the int64 is > 0 exactly
      when one of its 8 entries is set), else as uint8;
    * integer maps as they are."""
    dtype = runs.dtype
    if dtype in _SAME_WIDTH_INT:
        runs = runs.view(_SAME_WIDTH_INT[dtype])
    elif dtype == torch.bool:
        wide = runs.shape[1] % 8 == 0 and runs.is_contiguous() and runs.storage_offset() % 8 == 0
        runs = runs.view(torch.int64) if wide else runs.view(torch.uint8)
    return runs.amax(dim=1) > 0


class _Fixated:
    """The fixated pixels of a batch as index lists: ``image`` and ``pixel`` (M,) int64 (row-major flat index within
    the image), ascending per image, and ``weight`` (M,) float64: the pixels with F > 0, weight 1 (``binary``, MIT) or
    F (a point list → fixation counts). Entries ≤ 0 are not fixations."""

    def __init__(self, fixations: Fixations, shape: tuple[int, int, int], device: torch.device, binary: bool) -> None:
        batch, height, width = shape
        if isinstance(fixations, torch.Tensor):
            fmap = _on(_batch_maps(fixations.detach() if fixations.requires_grad else fixations), device)
            if fmap.shape[-2:] != (height, width):
                raise ValueError(
                    f"fixation map size {tuple(fmap.shape[-2:])} differs from the map size {(height, width)}"
                )
        else:
            fmap = fixations_to_map(fixations, height, width, binary=binary, device=device)
        if fmap.shape[0] != batch:
            raise ValueError(f"{fmap.shape[0]} fixation sets for a batch of {batch} predictions")
        self.batch, numel = batch, height * width
        if fmap.numel() <= INLINE_PIXELS:  # small: one pass over the map
            flat = (fmap.reshape(-1) > 0).nonzero().squeeze(1)
            weight = fmap.reshape(-1)[flat]
        else:  # short runs of pixels that hold a fixation (one fast max over the map), then the pixels in those runs
            run = math.gcd(numel, 256)  # runs of 64–256 pixels reduce fast and leave few candidates; else image rows
            run = run if run >= 64 else width
            runs = fmap.reshape(-1, run)
            hit = _candidate_runs(runs).nonzero().squeeze(1)
            sub = runs.index_select(0, hit)
            r, c = (sub > 0).nonzero(as_tuple=True)
            flat, weight = hit[r] * run + c, sub[r, c]
        self.image = torch.div(flat, numel, rounding_mode="floor")
        self.pixel = flat - self.image * numel
        self.weight = torch.ones(len(flat), dtype=torch.float64, device=device) if binary else weight.double()

    def counts(self) -> list[int]:
        """Number of fixated pixels per image."""
        return torch.bincount(self.image, minlength=self.batch).tolist()

    def values(self, rows: torch.Tensor) -> torch.Tensor:
        """(B, N) rows → their values at the fixated pixels (M,), in the rows' dtype."""
        return rows[self.image, self.pixel]

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Σ w·v / Σ w per image of per-fixation values (M,) → (B,) float64; 0 for an image without fixations."""
        num = torch.zeros(self.batch, dtype=torch.float64, device=values.device)
        den = torch.zeros_like(num)
        num.index_add_(0, self.image, self.weight * values)
        den.index_add_(0, self.image, self.weight)
        return _safe_divide(num, den, 0.0)


def _sorted(x: torch.Tensor) -> torch.Tensor:
    """Values of a 1-D tensor in ascending order (NumPy's vectorised sort on the CPU: several times faster there)."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.sort(x.numpy()))
    return x.sort().values


__all__ = ["Fixations", "center_bias_map", "fixations_to_map", "other_image_fixations"]
