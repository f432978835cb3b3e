"""Per-image saliency measures on batched tensors; the training losses are built from the same helpers.

Shapes: maps are (B, H, W) or (B, 1, H, W); every measure returns a (B,) tensor (one value per image).

Two groups of functions live here:

* **Loss building blocks** (differentiable, dtype-preserving, used by :mod:`umsi.losses`): :func:`kl_divergence`,
  :func:`correlation_coefficient`, :func:`normalized_scanpath_saliency`, :func:`mean_squared_error`. They follow the
  official UMSI Keras losses (umsi-reference §4): ε = 1e-7 (Keras ``K.epsilon()``), the prediction divided by its
  maximum before KL and NSS, KL(target ‖ prediction) in nats.
* **Evaluation metrics** (not differentiable; float64 arithmetic on the maps' own values): :func:`cc`, :func:`kl`,
  :func:`sim`, :func:`r2`, :func:`rmse`, :func:`nss`, :func:`auc_judd`, :func:`auc_borji`, :func:`sauc`,
  :func:`info_gain`. They equal the plain transcription in :mod:`umsi.metrics.reference` within 1e-6 relative (the
  "Evaluation metrics" section below says how they are computed fast). Each takes a keyword ``convention``:

  - ``"umsi"`` (default): the official UMSI evaluation (MDS ``src/eval.py``, umsi-reference §5). The prediction is
    min–max scaled to [0, 1] first; a continuous target map whose maximum exceeds 1 is divided by 255.
  - ``"mit"``: the MIT saliency benchmark MATLAB code (``cvzoya/saliency/code_forMetrics``), eps = 2.2204e-16
    (MATLAB ``eps``), without any resizing (maps must already have the fixation map's size).

  Where one convention has no definition of a metric, both use the other's (said in each docstring).

Fixations are given either as maps (B, H, W) / (B, 1, H, W) or as a list of B point arrays/tensors of shape (N_i, 2)
holding 0-based (x, y) pixel coordinates (truncated to int, as pysaliency's ``x_int``; out-of-range points raise).
Fixation weighting, shared by :func:`nss` and :func:`info_gain`:

- ``"mit"``: binary, pixels with F > 0 (duplicates at one pixel collapse into one, as in the MIT code);
- ``"umsi"``: F is used as weights, Σ F·v / Σ F over the pixels with F > 0 (``nss_npy``; a fixation map holds
  non-negative counts or indicators); a point list becomes a **count** map, so duplicate fixations count once each —
  the per-fixation average that pysaliency uses (``average='fixation'``).

The AUC family always uses the binary set of fixated pixels (MIT). pysaliency instead evaluates every fixation
*coordinate* (duplicates count), so it agrees with the binary conventions only for duplicate-free fixations.

No measure returns NaN or ±inf: degenerate inputs (constant or all-zero maps, images without fixations) have the
defined values stated in each docstring. Two rules recur:

- *constant map*: min–max scaling maps it to all zeros; NSS and CC are 0 for a constant map and for a near-constant
  one, whose standard deviation is at most :data:`CONSTANT_RTOL` (1e-9) of its root mean square, in every dtype;
- *distribution*: after the convention's scaling, a map with zero total mass is taken as the uniform distribution
  (pysaliency's ``convert_saliency_map_to_density`` rule; MATLAB gives NaN there).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

EPS = 1e-7
"""Keras ``K.epsilon()``: the official UMSI losses and the ``"umsi"`` evaluation."""
MATLAB_EPS = 2.2204e-16
"""MATLAB ``eps`` as written in the MIT benchmark code and pysaliency's ``MIT_KLDiv``."""
CONVENTIONS = ("umsi", "mit")
CONVENTION_FREE = frozenset({"cc", "sim", "r2", "rmse", "auc_judd", "auc_borji", "sauc"})
"""Metrics whose value is the same under both conventions (each docstring says why): a caller that wants both needs
one call."""

Fixations = torch.Tensor | Sequence[torch.Tensor | np.ndarray]


# ---------------------------------------------------------------------------------------------------------------
# Normalisation helpers shared by the losses and the metrics. ``eps > 0``: the differentiable loss form (a floored
# denominator); ``eps = 0``: the exact form, where a zero denominator leaves the numerator (which is then zero).
# ---------------------------------------------------------------------------------------------------------------


def _flat(x: torch.Tensor) -> torch.Tensor:
    """(B, ...) → (B, N) in float32 or wider."""
    x = x.reshape(x.shape[0], -1)
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _safe_divide(num: torch.Tensor, den: torch.Tensor, eps: float) -> torch.Tensor:
    """num / max(den, eps) for eps > 0; for eps = 0, num / den where den > 0 and num where den = 0."""
    if eps > 0:
        return num / den.clamp_min(eps)
    return num / torch.where(den > 0, den, torch.ones_like(den))


def max_normalize(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """(B, N) → x / max(x) per image; an all-zero map stays zero (the max is floored at ``eps``; exact if 0)."""
    return _safe_divide(x, x.amax(dim=1, keepdim=True), eps)


def minmax_normalize(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """(B, ...) → (x − min) / (max − min) per image, in [0, 1]; a constant map becomes all zeros.
    The range is floored at ``eps``; ``eps=0`` divides by the exact range (constant maps still give zeros)."""
    flat = _flat(x)
    lo = flat.amin(dim=1, keepdim=True)
    hi = flat.amax(dim=1, keepdim=True)
    return _safe_divide(flat - lo, hi - lo, eps).reshape(x.shape)


def sum_normalize(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """(B, N) → x / (Σx + ε) per image (a probability distribution for non-negative maps)."""
    return x / (x.sum(dim=1, keepdim=True) + eps)


def _zscore(x: torch.Tensor, correction: int = 0, eps: float = 0.0) -> torch.Tensor:
    """(B, N) → (x − mean) / std per image; std with ``correction`` (0: population, 1: N−1 as MATLAB ``std``).
    eps > 0 (loss form): variance floored at ε² and ε added to the std (finite gradients at zero variance);
    eps = 0: exact, and a constant map gives all zeros."""
    centred = x - x.mean(dim=1, keepdim=True)
    dof = max(x.shape[1] - correction, 1)
    var = centred.pow(2).sum(dim=1, keepdim=True) / dof
    if eps > 0:
        return centred / (var.clamp_min(eps * eps).sqrt() + eps)
    return _safe_divide(centred, var.sqrt(), 0.0)


def _pearson(p: torch.Tensor, g: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Pearson correlation of the rows of two (B, N) maps, centred form; 0 when either row is constant.
    eps > 0 floors the product of the squared norms at ε² (loss form, finite gradients)."""
    p = p - p.mean(dim=1, keepdim=True)
    g = g - g.mean(dim=1, keepdim=True)
    den2 = (p * p).sum(dim=1) * (g * g).sum(dim=1)
    num = (p * g).sum(dim=1)
    if eps > 0:
        return num / den2.clamp_min(eps * eps).sqrt()
    return _safe_divide(num, den2.sqrt(), 0.0)


# ---------------------------------------------------------------------------------------------------------------
# Loss building blocks (official UMSI Keras definitions, differentiable)
# ---------------------------------------------------------------------------------------------------------------


def kl_divergence(pred: torch.Tensor, target: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """KL(target ‖ pred) per image, natural log: P ← P/max P; both sum-normalised (+ε);
    Σ G·log(G/(P+ε) + ε). 0 for an all-zero target; large but finite for an all-zero prediction."""
    p = sum_normalize(max_normalize(_flat(pred), eps), eps)
    g = sum_normalize(_flat(target), eps)
    return (g * torch.log(g / (p + eps) + eps)).sum(dim=1)


def correlation_coefficient(pred: torch.Tensor, target: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Pearson correlation per image, in [−1, 1]; 0 when either map is constant.

    The official loss sum- and max-normalises first and uses the raw-moment formula; Pearson is invariant to
    those scalings, so this centred form gives the same value without the float32 cancellation.
    """
    return _pearson(_flat(pred), _flat(target), eps)


def normalized_scanpath_saliency(pred: torch.Tensor, fixations: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """NSS per image: P ← P/max P, z-scored with the population std (+ε); Σ F·z / (ΣF + ε) over the binary
    fixation map F. Exactly 0 for an image without fixations or a constant prediction."""
    z = _zscore(max_normalize(_flat(pred), eps), correction=0, eps=eps)
    f = _flat(fixations)
    return (f * z).sum(dim=1) / (f.sum(dim=1) + eps)


def mean_squared_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of (P − G)² per image (raw prediction: anchors its scale to the [0, 1] targets)."""
    return (_flat(pred) - _flat(target)).pow(2).mean(dim=1)


def evaluation_kl(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL as the official evaluation reports it: prediction min–max scaled first, then :func:`kl_divergence`.
    Dtype-preserving (float32 in, float32 out); :func:`kl` with ``convention="umsi"`` is the float64 metric."""
    return kl_divergence(minmax_normalize(pred), target)


# ---------------------------------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------------------------------


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, K) scores, (B,) class indices → (B,) 1.0 where the arg-max is the label, else 0.0.

    Labels < 0 mean "no class label" (e.g. GDI); they never match and give 0.0, so a caller averaging these values
    must drop them itself (``labels >= 0``). :func:`per_class_accuracy` and
    :class:`umsi.metrics.collection.ClassAccuracy` ignore them."""
    return (logits.argmax(dim=1) == labels).float()


def per_class_accuracy(
    logits: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, K) scores, (B,) labels → (correct (K,), total (K,)) int64 counts per true class.

    Images with a label < 0 ("no class label") are ignored; a label ≥ ``num_classes`` raises ``ValueError``.
    Per-class accuracy is correct / total (undefined where total = 0: the caller decides)."""
    labels = labels.reshape(-1).long()
    keep = labels >= 0
    labels = labels[keep]
    if labels.numel() and int(labels.max()) >= num_classes:
        raise ValueError(f"label {int(labels.max())} out of range for num_classes={num_classes}")
    hits = logits.argmax(dim=1)[keep] == labels
    return torch.bincount(labels[hits], minlength=num_classes), torch.bincount(labels, minlength=num_classes)


# ---------------------------------------------------------------------------------------------------------------
# Maps: baseline, blur, fixation conversion
# ---------------------------------------------------------------------------------------------------------------


def center_bias_map(height: int, width: int, sigma: float = 0.25) -> torch.Tensor:
    """Centred anisotropic Gaussian (H, W), max 1, std = ``sigma`` × each side: the classic baseline."""
    ys = torch.arange(height, dtype=torch.float32) - (height - 1) / 2
    xs = torch.arange(width, dtype=torch.float32) - (width - 1) / 2
    gy = torch.exp(-0.5 * (ys / (sigma * height)) ** 2)
    gx = torch.exp(-0.5 * (xs / (sigma * width)) ** 2)
    return gy[:, None] * gx[None, :]


def _symmetric_indices(size: int, radius: int, device: torch.device) -> torch.Tensor:
    """Indices for padding ``radius`` on both sides with half-sample symmetric reflection (d c b a | a b c d)."""
    idx = torch.arange(-radius, size + radius, device=device) % (2 * size)
    return torch.where(idx >= size, 2 * size - 1 - idx, idx)


def gaussian_blur(pred: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian blur of each map, σ in pixels: (B, H, W) or (B, 1, H, W) → same shape and dtype.

    Kernel radius ⌊truncate·σ + 0.5⌋, weights normalised to sum 1; padding is half-sample symmetric reflection
    (d c b a | a b c d). This equals ``scipy.ndimage.gaussian_filter(x, sigma, mode="reflect", truncate=4.0)``
    per image, which is what the authors' notebooks apply (σ = 7) before evaluation. σ ≤ 0 returns a copy."""
    if sigma <= 0:
        return pred.clone()
    shape = pred.shape
    x = _batch_maps(pred)
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


# ---------------------------------------------------------------------------------------------------------------
# Evaluation metrics
#
# How they are computed (speed: docs/performance.md). Maps stay in their storage dtype (float32 or float64; other
# dtypes become float64). Per-image sums over pixels go through :func:`_sums`: on the CPU the maps are copied to
# float64 in blocks of about 0.5 MB (pieces of images, so that a block's working copy stays in the core's L2 cache
# while several operations run over it), on other devices the whole batch is one block. Every value is converted to
# float64 exactly before any arithmetic and every sum is accumulated in float64; a sum of squared deviations that
# would cancel is taken again around the mean (:func:`_moments`). So the values equal the plain float64
# transcription kept in :mod:`umsi.metrics.reference` to rounding (within 1e-6 relative is the contract, ~1e-12 is
# typical). Fixation maps are reduced once to the fixated pixels (a gather, not a dense mask); NSS and IG read the
# prediction's moments and its values there; AUC-Judd counts with one sort of the map and a binary search per
# threshold. On the CPU torch works on one thread per part of a batch (:func:`_per_image_threads`).
# ---------------------------------------------------------------------------------------------------------------

CONSTANT_RTOL = 1e-9
"""A map whose standard deviation is at most this fraction of its root mean square counts as constant: NSS and CC 0.
Variation that small is rounding (a constant float64 map's mean is not exactly its value after summation), and its
z-scores would be noise (issue 13: NSS ±1 for constant float64 maps under "mit")."""

_BLOCK_ELEMENTS = 1 << 16
"""Pixels per float64 working block on the CPU (0.5 MB per map, so that two maps fit one core's L2 cache)."""


_threads_lock = threading.Lock()
_threads_saved: list[int] = []  # the intra-op thread count to restore, while metrics run on one thread
_threads_users = 0
_pool: ThreadPoolExecutor | None = None

_PARALLEL_MIN_PIXELS = 1 << 17
"""A CPU batch with fewer pixels is scored on the calling thread (handing it to other threads costs more)."""
_INLINE_PIXELS = 1 << 15
"""torch runs operations on fewer elements on the calling thread anyway (its grain size): no thread settings."""


@contextlib.contextmanager
def _one_cpu_thread() -> Iterator[int]:
    """Run torch's CPU operations on one thread meanwhile (restored after; reentrant and thread-safe); yields the
    thread count that was set before, the CPU threads the caller allows.

    The metrics issue many small operations (cache-sized blocks, per-image loops). For those OpenMP's fork/join costs
    more than a second thread gains, and on a loaded machine a descheduled worker thread stalls every operation:
    measured on 2 cores at load 15, the metrics ran at 0.13× the pysaliency loop on 2 OpenMP threads and 2.2× on one.
    :func:`_per_image_threads` uses the cores instead by scoring parts of a batch side by side."""
    global _threads_users
    with _threads_lock:
        if _threads_users == 0:
            _threads_saved.append(torch.get_num_threads())
            torch.set_num_threads(1)
        _threads_users += 1
        allowed = _threads_saved[0]
    try:
        yield allowed
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_saved.pop())


def _thread_pool() -> ThreadPoolExecutor:
    global _pool
    with _threads_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="umsi-metrics")
        return _pool


def _forget_pool() -> None:  # a forked child has none of the parent's threads
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


def _per_image(value: Any, batch: int) -> bool | None:
    """True for a per-image argument of a batch (a tensor (B, ...) of 3+ dims, a list of B point sets), None for a
    shared one (scalars, a single (H, W) map), False for a batch-like argument of another size."""
    if isinstance(value, torch.Tensor) and value.dim() >= 3:
        return value.shape[0] == batch
    if isinstance(value, list | tuple):
        return len(value) == batch
    return None


_F = TypeVar("_F", bound=Callable[..., torch.Tensor])


def _per_image_threads(fn: _F) -> _F:
    """Decorator for the per-image metrics ``fn(pred, ...) → (B,)``. On the CPU, torch runs on one thread meanwhile
    (:func:`_one_cpu_thread`) and a large enough batch is cut into consecutive parts of images scored side by side on
    as many Python threads as torch was allowed threads (torch and NumPy release the GIL in their loops), so both
    cores work without OpenMP's barriers; every image's value is the same as scored alone. Other devices: unchanged."""

    @functools.wraps(fn)
    def wrapper(pred: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if pred.device.type != "cpu" or pred.numel() <= _INLINE_PIXELS:
            return fn(pred, *args, **kwargs)
        with _one_cpu_thread() as threads:
            maps = _batch_maps(pred)
            batch = maps.shape[0]
            workers = min(threads, batch) if maps.numel() >= _PARALLEL_MIN_PIXELS else 1
            values = (pred, *args, *kwargs.values())
            if workers < 2 or any(_per_image(v, batch) is False for v in values):
                return fn(pred, *args, **kwargs)
            bounds = [round(k * batch / workers) for k in range(workers + 1)]

            def part(value: Any, rows: slice) -> Any:
                return value[rows] if _per_image(value, batch) else value

            jobs = [
                _thread_pool().submit(
                    fn, *(part(a, rows) for a in (pred, *args)), **{k: part(v, rows) for k, v in kwargs.items()}
                )
                for rows in (slice(a, b) for a, b in itertools.pairwise(bounds))
            ]
            return torch.cat([job.result() for job in jobs])

    return wrapper  # type: ignore[return-value]


def _check(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention={convention!r}: choose one of {CONVENTIONS}")
    return convention


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


def _layout(batch: int, numel: int, device: torch.device) -> tuple[int, int]:
    """(pieces per image, pieces per block) for :func:`_sums`: on the CPU, images are cut into the fewest equal pieces
    of at most :data:`_BLOCK_ELEMENTS` pixels (whole images when no such cut leaves pieces of a quarter block or more)
    and a block holds as many pieces as fit."""
    if device.type != "cpu":
        return 1, batch
    cuts = range(-(-numel // _BLOCK_ELEMENTS), numel // (_BLOCK_ELEMENTS // 4) + 1)
    split = next((s for s in cuts if numel % s == 0), 1)
    return split, max(1, _BLOCK_ELEMENTS // (numel // split))


def _sums(
    fn: Callable[..., tuple[torch.Tensor, ...]], maps: Sequence[torch.Tensor], constants: Sequence[torch.Tensor] = ()
) -> tuple[torch.Tensor, ...]:
    """Per-image sums over the pixels of M aligned (B, N) maps, accumulated in float64 block by block.

    ``fn(block, *columns)`` gets a float64 copy ``block`` (r, M, n) of r pieces of images (``block[:, j]`` is map j; it
    may be changed in place) and each per-image constant of ``constants`` ((B,) or (B, C)) as a column (r, 1, 1) or
    (r, C, 1) aligned with the pieces; it returns a tuple of per-piece partial sums, each (r, ...). Returns the same
    tuple summed over the pieces of each image, each (B, ...)."""
    batch, numel = maps[0].shape
    device = maps[0].device
    split, per_block = _layout(batch, numel, device)
    pieces, width = batch * split, numel // split
    views = [m.reshape(pieces, width) for m in maps]
    columns = [(c if split == 1 else c.repeat_interleave(split, dim=0)).reshape(pieces, -1, 1) for c in constants]
    work = torch.empty((min(per_block, pieces), len(maps), width), dtype=torch.float64, device=device)
    parts = []
    for start in range(0, pieces, per_block):
        stop = min(start + per_block, pieces)
        block = work[: stop - start]
        for j, view in enumerate(views):
            block[:, j].copy_(view[start:stop])
        parts.append(fn(block, *(c[start:stop] for c in columns)))
    if split == 1 and len(parts) == 1:  # a small batch: one block of whole images
        return parts[0]
    return tuple(torch.cat(part).view(batch, split, *part[0].shape[1:]).sum(dim=1) for part in zip(*parts, strict=True))


def _row_sums(x: torch.Tensor) -> torch.Tensor:
    """(B, N) → Σx per row, accumulated in float64 without a float64 copy of the maps (NumPy's buffered reduction on
    the CPU, a fused cast elsewhere)."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.einsum("ij->i", x.numpy(), dtype=np.float64))
    return x.sum(dim=1, dtype=torch.float64)


_WELL_CONDITIONED = 1e-2
"""Σ(x − mean)² is taken as Σx² − (Σx)²/N when it is at least this fraction of Σx² (the subtraction then loses at
most two digits of float64); otherwise the map's sums are taken again around its mean."""


def _moment_kernel(cross: bool) -> Callable[..., tuple[torch.Tensor, ...]]:
    """:func:`_sums` kernel (optionally with a shift column): per piece Σx (r, M), Σx² (r, M) and, with ``cross``
    (two maps), Σxy (r,), of x − shift."""

    def kernel(block: torch.Tensor, shift: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        if shift is not None:
            block.sub_(shift)
        if not cross:
            return block.sum(dim=2), torch.linalg.vector_norm(block, dim=2).square_()
        gram = torch.bmm(block, block.transpose(1, 2))  # all products of the maps in one pass
        return block.sum(dim=2), gram.diagonal(dim1=1, dim2=2), gram[:, 0, 1]

    return kernel


def _moments(maps: Sequence[torch.Tensor], cross: bool = False) -> tuple[torch.Tensor, ...]:
    """Per image of M aligned (B, N) maps: the mean as shift + offset (M, B) each, Σ(x − mean)² (M, B) and, with
    ``cross`` (two maps), Σ(x − x̄)(y − ȳ) (B,); float64.

    One pass of raw sums (shift 0); images where Σx² − (Σx)²/N would cancel (a map far from 0 relative to its
    spread, e.g. 1000 ± 0.001, or a constant map) are summed again around their mean (the shift), so every value
    stays exact to rounding; x − mean is best taken as (x − shift) − offset."""
    numel = maps[0].shape[1]

    def centre(sums: torch.Tensor, squares: torch.Tensor, *cross_sum: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mean = sums.T / numel
        cov = (cross_sum[0] - sums[:, 0] * mean[1],) if cross else ()
        return mean, squares.T - sums.T * mean, squares.T, *cov

    offset, centred, squares, *cov = centre(*_sums(_moment_kernel(cross), maps))
    shift = torch.zeros_like(offset)
    risky = (centred < _WELL_CONDITIONED * squares).any(dim=0).nonzero().squeeze(1)
    if risky.numel():
        shift[:, risky] = offset[:, risky]
        rows = [m.index_select(0, risky) for m in maps]
        again = _sums(_moment_kernel(cross), rows, [shift[:, risky].T])
        offset[:, risky], centred[:, risky], _, *cov_again = centre(*again)
        for full, part in zip(cov, cov_again, strict=True):
            full[risky] = part
    return shift, offset, centred.clamp_min(0), *cov


def _constant(centred: torch.Tensor, mean: torch.Tensor, numel: int) -> torch.Tensor:
    """Images whose std is at most :data:`CONSTANT_RTOL` of their root mean square (exactly constant maps included),
    from Σ(x − mean)² and the mean."""
    variance = centred / numel
    return variance <= CONSTANT_RTOL**2 * (mean.square() + variance)


def _range(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N) → per-row (min, max), float64."""
    return x.amin(dim=1).double(), x.amax(dim=1).double()


def _span(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """max − min, 1 where the map is constant (its min–max scaled map is then all zeros)."""
    return torch.where(hi > lo, hi - lo, torch.ones_like(hi))


def _target_scale(g: torch.Tensor, convention: str) -> torch.Tensor:
    """(B,) divisor of the continuous target: ``"umsi"`` divides a map whose max exceeds 1 by 255 (8-bit maps)."""
    over = g.amax(dim=1) > 1 if convention == "umsi" else torch.zeros(g.shape[0], dtype=torch.bool, device=g.device)
    return torch.where(over, 255.0, 1.0).to(device=g.device, dtype=torch.float64)


def _masses(maps: Sequence[torch.Tensor], shifts: torch.Tensor) -> torch.Tensor:
    """Σ(x − shift) per image of each of M aligned (B, N) maps, shifts (M, B) → (M, B) float64. Taken as Σx − N·shift
    where that keeps ~14 digits (always for shift 0), else summed again after the shift."""
    numel = maps[0].shape[1]
    mass = _on(torch.stack([_row_sums(m) for m in maps]), shifts.device)
    if not bool((shifts != 0).any()):
        return mass
    mass -= numel * shifts
    risky = (_WELL_CONDITIONED * numel * shifts.abs() > mass.abs()).any(dim=0).nonzero().squeeze(1)
    if risky.numel():

        def kernel(block: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor]:
            return (block.sub_(shift).sum(dim=2),)

        mass[:, risky] = _sums(kernel, [m.index_select(0, risky) for m in maps], [shifts[:, risky].T])[0].T
    return mass


def _distribution_shift(x: torch.Tensor, minmax: bool) -> torch.Tensor:
    """The shift that makes a map a non-negative mass before normalisation (pysaliency's/MIT's rules): its minimum
    (``minmax``, the min–max step; the division by the range cancels in the normalisation) or, for a map with
    negative values, its minimum, else 0."""
    lo = x.amin(dim=1).double()
    return lo if minmax else lo.clamp_max(0)


def _mass_step(shifts: torch.Tensor, empty: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]:
    """The in-place first step of a distribution kernel, ``step(block, shift, zero_mass)``: x − shift, then 1 for
    the maps of zero mass (the uniform distribution once normalised); each part skipped when no map of the batch
    needs it."""
    shifting, filling = bool((shifts != 0).any()), bool(empty.any())

    def step(block: torch.Tensor, shift: torch.Tensor, zero_mass: torch.Tensor) -> None:
        if shifting:
            block.sub_(shift)
        if filling:
            block.masked_fill_(zero_mass, 1.0)

    return step


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Σ a·b per row of two (r, n) float64 tensors: one BLAS pass, no (r, n) temporary → (r,)."""
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).view(-1)


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
        if fmap.numel() <= _INLINE_PIXELS:  # small: one pass over the map
            flat = (fmap.reshape(-1) > 0).nonzero().squeeze(1)
            weight = fmap.reshape(-1)[flat]
        else:  # short runs of pixels that hold a fixation (one fast max over the map), then the pixels in those runs
            run = math.gcd(numel, 256)  # runs of 64–256 pixels reduce fast and leave few candidates; else image rows
            run = run if run >= 64 else width
            runs = fmap.reshape(-1, run)
            hit = (runs.amax(dim=1) > 0).nonzero().squeeze(1)
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


@_per_image_threads
def cc(pred: torch.Tensor, target: torch.Tensor, *, convention: str = "umsi") -> torch.Tensor:
    """Linear correlation coefficient (Pearson) between prediction and continuous target map, per image.

    ``"umsi"`` (``cc_npy``): prediction min–max scaled, target ÷255 if its max > 1, then Pearson. ``"mit"``
    (``CC.m``): z-score both maps, mean of the product (= Pearson). Pearson is invariant to those affine scalings, so
    both conventions give the same value; computed from centred float64 sums of the raw maps.
    Degenerate: 0 when either map is constant (incl. all-zero) or near-constant (std at most :data:`CONSTANT_RTOL`
    of its root mean square), in every dtype. Range [−1, 1]."""
    _check(convention)
    p, g = _pair(pred, target)
    shift, offset, centred, cov = _moments([p, g], cross=True)
    den = (centred[0] * centred[1]).sqrt()
    flat = _constant(centred, shift + offset, p.shape[1]).any(dim=0) | (den <= 0)
    return torch.where(flat, 0.0, cov / torch.where(flat, 1.0, den))


@_per_image_threads
def kl(pred: torch.Tensor, target: torch.Tensor, *, convention: str = "umsi") -> torch.Tensor:
    """KL(target ‖ prediction), natural log (nats), per image; the target is the reference distribution.

    ``"umsi"`` (``kl_npy``, ε = 1e-7): P min–max scaled, then P ← P/max P; G ÷255 if max > 1; both divided by
    (their sum + ε); KL = Σ G·log(G/(P+ε) + ε) — :func:`kl_divergence` on the min–max scaled prediction.
    ``"mit"`` (``KLdiv.m``, eps = 2.2204e-16): no min–max; both sum-normalised (a map with negative values is first
    shifted to minimum 0, a zero-mass map becomes uniform — pysaliency's rules); KL = Σ G·log(eps + G/(P+eps)).
    Equals ``pysaliency.metrics.MIT_KLDiv(pred, target)``.
    Degenerate: all-zero target → 0 (umsi) / KL(uniform ‖ P) (mit); all-zero or constant prediction → the finite
    Σ G·log(G/ε + ε) (umsi: the min–max scaled map is all zero) / KL(G ‖ uniform) (mit). The ε regularisers can make
    the value slightly negative (Gibbs' inequality on the regularised maps): down to −N·eps (mit, N pixels) and to
    −(N·ε + ε/ΣG) (umsi, ΣG = the target's total mass), e.g. for identical maps."""
    umsi = _check(convention) == "umsi"
    p, g = _pair(pred, target)
    n = p.shape[1]
    if umsi:  # P = (x − min)/(max − min) / (Σ + ε) = (x − min)/(Σ(x − min) + ε·span); G likewise with its ÷255
        lo, hi = _range(p)
        shifts = torch.stack([lo, torch.zeros_like(lo)], dim=1)
        mass = _masses([p, g], shifts.T)
        divisors = torch.stack([mass[0] + EPS * _span(lo, hi), mass[1] + EPS * _target_scale(g, convention)], dim=1)
        eps, empty = EPS, torch.zeros_like(shifts, dtype=torch.bool)
    else:  # P = (x − shift)/Σ(x − shift), uniform where the mass is 0
        shifts = torch.stack([_distribution_shift(p, False), _distribution_shift(g, False)], dim=1)
        mass = _masses([p, g], shifts.T).T
        empty = mass <= 0
        divisors, eps = torch.where(empty, float(n), mass), MATLAB_EPS

    step = _mass_step(shifts, empty)

    def kernel(
        block: torch.Tensor, shift: torch.Tensor, zero_mass: torch.Tensor, d: torch.Tensor
    ) -> tuple[torch.Tensor]:
        step(block, shift, zero_mass)
        block.div_(d)
        prediction, target_ = block[:, 0], block[:, 1]
        ratio = torch.div(target_, prediction.add_(eps), out=prediction).add_(eps)  # G/(P+ε) + ε
        return (_rowdot(target_, ratio.log_()),)

    return _sums(kernel, [p, g], [shifts, empty, divisors])[0]


@_per_image_threads
def sim(pred: torch.Tensor, target: torch.Tensor, *, convention: str = "umsi") -> torch.Tensor:
    """Similarity (histogram intersection) per image: both maps min–max scaled to [0, 1], divided by their sums,
    Σ min(P, G). Same in both conventions (``sim_npy`` and ``similarity.m``), in [0, 1].

    pysaliency's ``SIM`` does **not** min–max scale (it only shifts maps with negative values), so it agrees only
    when both maps have minimum 0; in general ``sim(P, G) = pysaliency.metrics.SIM(P − min P, G − min G)``.
    Degenerate: a constant (incl. all-zero) map becomes uniform, so SIM = Σ min(1/N, G) (1 if both constant)."""
    _check(convention)
    p, g = _pair(pred, target)
    shifts = torch.stack([_distribution_shift(p, True), _distribution_shift(g, True)], dim=1)
    mass = _masses([p, g], shifts.T).T  # (B, 2): Σ(x − min)
    empty = mass <= 0
    mass = torch.where(empty, float(p.shape[1]), mass)

    step = _mass_step(shifts, empty)

    def kernel(
        block: torch.Tensor, shift: torch.Tensor, zero_mass: torch.Tensor, ratio: torch.Tensor
    ) -> tuple[torch.Tensor]:
        step(block, shift, zero_mass)
        prediction, target_ = block[:, 0], block[:, 1]
        return (torch.minimum(prediction, target_.mul_(ratio[:, 0]), out=prediction).sum(dim=1),)

    # Σ min(P/mP, G/mG) = Σ min(P, G·mP/mG) / mP: one scaling pass instead of two
    return _sums(kernel, [p, g], [shifts, empty, mass[:, 0] / mass[:, 1]])[0] / mass[:, 0]


def _squared_residuals(pred: torch.Tensor, target: torch.Tensor, spread: bool) -> tuple[torch.Tensor, ...]:
    """Σ(P − G)² per image with P min–max scaled (constant → 0) and G ÷255 if its max > 1; with ``spread`` also the
    mean of G and Σ(G − mean G)² (for R²)."""
    p, g = _pair(pred, target)
    numel = p.shape[1]
    lo, hi = _range(p)
    scale = _target_scale(g, "umsi")

    scaling = bool((scale != 1).any())

    def kernel(block: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        lo_, span, scale_ = c.unbind(dim=1)  # (r, 1) each
        prediction, target_ = block[:, 0], block[:, 1]
        if scaling:
            target_.div_(scale_)
        moments = (target_.sum(dim=1), torch.linalg.vector_norm(target_, dim=1).square_()) if spread else ()
        residual = torch.linalg.vector_norm(prediction.sub_(lo_).div_(span).sub_(target_), dim=1).square_()
        return residual, *moments

    residual, *moments = _sums(kernel, [p, g], [torch.stack([lo, _span(lo, hi), scale], dim=1)])
    if not spread:
        return (residual,)
    sums, squares = moments
    mean = sums / numel
    centred = squares - sums * mean
    risky = (centred < _WELL_CONDITIONED * squares).nonzero().squeeze(1)
    if risky.numel():  # taken again around the mean (see _moments), then scaled like the target
        shift, offset, again_centred = _moments([g.index_select(0, risky)])
        mean[risky] = (shift[0] + offset[0]) / scale[risky]
        centred[risky] = again_centred[0] / scale[risky].square()
    return residual, mean, centred.clamp_min(0)


@_per_image_threads
def r2(pred: torch.Tensor, target: torch.Tensor, *, convention: str = "umsi") -> torch.Tensor:
    """Coefficient of determination per image (``r2`` in the UMSI eval; MIT has none, so both conventions use it):
    P min–max scaled to [0, 1], G ÷255 if max > 1; R² = 1 − Σ(P − G)² / Σ(G − mean G)².
    Degenerate: constant target (Σ(G − mean G)² = 0, or near-constant: :data:`CONSTANT_RTOL`) → 1 if P equals G
    exactly, else 0 (scikit-learn's rule)."""
    _check(convention)
    residual, mean, spread = _squared_residuals(pred, target, spread=True)
    flat = _constant(spread, mean, _batch_maps(pred)[0].numel()) | (spread <= 0)
    perfect = (residual == 0).to(residual.dtype)
    return torch.where(flat, perfect, 1 - residual / torch.where(flat, 1.0, spread))


@_per_image_threads
def rmse(pred: torch.Tensor, target: torch.Tensor, *, convention: str = "umsi") -> torch.Tensor:
    """Root mean squared error per image (``rmse`` in the UMSI eval; MIT has none, so both conventions use it):
    P min–max scaled to [0, 1] (constant → 0), G ÷255 if max > 1; √mean((G − P)²). Always finite, in [0, 1]."""
    _check(convention)
    (residual,) = _squared_residuals(pred, target, spread=False)
    return (residual / _batch_maps(pred)[0].numel()).sqrt()


@_per_image_threads
def nss(pred: torch.Tensor, fixations: Fixations, *, convention: str = "umsi") -> torch.Tensor:
    """Normalized scanpath saliency per image: mean of the z-scored prediction at the fixations.

    ``"umsi"`` (``nss_npy``): P min–max scaled, z = (P − mean)/std with the **population** std (N); Σ F·z / Σ F with F
    used as weights (a point list → count map: every fixation counts, duplicates included — equals pysaliency's
    ``NSS`` averaged per fixation, which also uses the population std). ``"mit"`` (``NSS.m``): z-score with the
    **N − 1** std (MATLAB ``std``), mean over the fixated pixels F > 0 (duplicates collapse); this is the umsi value
    × √((N − 1)/N) for binary F. z is invariant to the min–max step, so it is taken from P directly (the mean and
    std from float64 sums; the fixated values gathered, not masked).
    Degenerate: 0 for an image without fixations and for a constant or near-constant prediction (std at most
    :data:`CONSTANT_RTOL` of its root mean square), in every dtype and convention."""
    mit = _check(convention) == "mit"
    p = _rows(pred)
    n = p.shape[1]
    fixated = _Fixated(fixations, _batch_maps(pred).shape, p.device, binary=mit)
    (shift,), (offset,), (centred,) = _moments([p])
    std = (centred / max(n - int(mit), 1)).sqrt()
    std = torch.where(_constant(centred, shift + offset, n), 0.0, std)[fixated.image]
    image = fixated.image
    z = (fixated.values(p).double() - shift[image] - offset[image]) / torch.where(std > 0, std, 1.0)
    return fixated.mean(torch.where(std > 0, z, 0.0))


@_per_image_threads
def info_gain(
    pred: torch.Tensor, fixations: Fixations, baseline: torch.Tensor, *, convention: str = "umsi"
) -> torch.Tensor:
    """Information gain of the prediction over ``baseline`` (bits per fixation), per image (``InfoGain.m``):
    P and B (the baseline, (B, H, W), (B, 1, H, W) or one (H, W) map for all) min–max scaled and divided by their
    sums; mean over fixations of log₂(eps + P) − log₂(eps + B), eps = 2.2204e-16 in both conventions (UMSI has no
    IG). Fixation weighting: binary F > 0 (``"mit"``) or F as weights / point counts (``"umsi"``), see the module.
    Only the fixated values and each map's min, max and sum are read, so no map-sized logarithm is taken.
    Note pysaliency's ``information_gain`` needs a probabilistic model (log-densities), not these maps.
    Degenerate: 0 for an image without fixations; a constant (incl. all-zero) map is the uniform distribution, so
    IG = 0 when both maps are constant."""
    mit = _check(convention) == "mit"
    maps = _batch_maps(pred)
    p = _rows(maps)
    base = _on(baseline, p.device)
    shared = base.dim() == 2
    b = _rows(base[None] if shared else _batch_maps(base).expand(maps.shape))
    fixated = _Fixated(fixations, maps.shape, p.device, binary=mit)

    def log2_density(rows: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """log₂(eps + the min–max scaled, sum-normalised map) at the fixated pixels (uniform for zero mass)."""
        lo = rows.amin(dim=1).double()
        mass = _masses([rows], lo[None])[0]
        values = (rows[image, fixated.pixel].double() - lo[image]) / torch.where(mass > 0, mass, 1.0)[image]
        return torch.log2(MATLAB_EPS + torch.where(mass[image] > 0, values, 1.0 / rows.shape[1]))

    image = fixated.image
    gain = log2_density(p, image) - log2_density(b, torch.zeros_like(image) if shared else image)
    return fixated.mean(gain)


def _trapezoid(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Trapezoidal area under y(x) along the last dimension."""
    return ((x[..., 1:] - x[..., :-1]) * (y[..., 1:] + y[..., :-1])).sum(dim=-1) / 2


def _fraction_at_least(sorted_values: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Fraction of ``sorted_values`` (ascending, last dim) that are ≥ each threshold."""
    n = sorted_values.shape[-1]
    below = torch.searchsorted(sorted_values.contiguous(), thresholds.contiguous(), side="left")
    return (n - below).to(sorted_values.dtype) / n


@_per_image_threads
def auc_judd(pred: torch.Tensor, fixations: Fixations, *, convention: str = "umsi") -> torch.Tensor:
    """AUC-Judd per image (``AUC_Judd.m``; the same in both conventions, UMSI had none of its own):
    positives = values at the fixated pixels (binary, duplicates collapse), negatives = all unfixated pixels,
    thresholds = the distinct fixated values; TP = fraction of fixated pixels ≥ t, FP = fraction of unfixated
    pixels ≥ t; ROC closed by (0, 0) and (1, 1), trapezoidal area.

    **No jitter**: MATLAB adds U(0, 1e-7) noise to break ties; here ties are handled exactly (counts of values ≥ t),
    which equals the MATLAB result for tie-free maps and its expectation over the jitter otherwise (the trapezoid
    across a tie is the average of the random orderings). Equals pysaliency's ``AUC_Judd(..., jitter=False)``
    (``nonfixations='unfixated'``, ``thresholds='fixations'``) for duplicate-free fixations. Invariant to monotone
    rescaling of the prediction (so the umsi min–max step changes nothing). The counts of unfixated pixels ≥ t come
    from one sort of the whole map (all pixels ≥ t minus fixated pixels ≥ t).
    Degenerate: 0.5 for an image without fixations or with every pixel fixated; a constant map gives 0.5."""
    _check(convention)
    p = _rows(pred)
    fixated = _Fixated(fixations, _batch_maps(pred).shape, p.device, binary=True)
    counts = fixated.counts()
    out = torch.full((p.shape[0],), 0.5, dtype=torch.float64, device=p.device)
    n = p.shape[1]
    for i, positives in enumerate(fixated.values(p).split(counts)):
        n_pos = counts[i]
        if n_pos == 0 or n_pos == n:
            continue
        positives = positives.sort().values
        thresholds = torch.unique_consecutive(positives).flip(0)  # descending
        at_least_all = n - torch.searchsorted(_sorted(p[i]), thresholds, side="left")
        at_least_pos = n_pos - torch.searchsorted(positives, thresholds, side="left")
        tp = at_least_pos.double() / n_pos
        fp = (at_least_all - at_least_pos).double() / (n - n_pos)
        zero, one = tp.new_zeros(1), tp.new_ones(1)
        out[i] = _trapezoid(torch.cat([zero, tp, one]), torch.cat([zero, fp, one]))
    return out


def _sampled_auc(positives: torch.Tensor, negatives: torch.Tensor, step: float) -> torch.Tensor:
    """MIT ``AUC_Borji``/``AUC_shuffled`` curve: positives (P,), negatives (S, M) for S splits, values in [0, 1];
    thresholds 0 : step : max descending (one grid for all splits: a threshold above a split's maximum adds the point
    (0, 0), which has no area); TP over positives, FP over each split's negatives → mean AUC over splits."""
    if step <= 0:
        raise ValueError(f"step={step}: the threshold step must be positive")
    top = float(torch.maximum(positives.max(), negatives.max()))
    count = math.floor(top / step + 1e-9) + 1
    thresholds = (torch.arange(count, dtype=positives.dtype, device=positives.device) * step).flip(0)
    tp = _fraction_at_least(positives.sort().values, thresholds)  # (T,)
    fp = _fraction_at_least(negatives.sort(dim=1).values, thresholds.expand(negatives.shape[0], -1))  # (S, T)
    zeros = negatives.new_zeros(negatives.shape[0], 1)
    ones = negatives.new_ones(negatives.shape[0], 1)
    y = torch.cat([zeros, tp.expand_as(fp), ones], dim=1)
    x = torch.cat([zeros, fp, ones], dim=1)
    return _trapezoid(y, x).mean()


class _MinMaxScaled:
    """Values of a (B, N) batch min–max scaled per image on demand, float64 ((x − min)/(max − min); constant → 0),
    without scaling the whole map: the sampled AUCs read only the fixated and the drawn pixels."""

    def __init__(self, rows: torch.Tensor) -> None:
        self.rows = rows
        self.lo, hi = _range(rows)
        self.span = torch.where(hi > self.lo, hi - self.lo, torch.ones_like(hi))

    def __call__(self, image: int, pixels: torch.Tensor) -> torch.Tensor:
        return (self.rows[image][pixels].double() - self.lo[image]) / self.span[image]


@_per_image_threads
def auc_borji(
    pred: torch.Tensor,
    fixations: Fixations,
    *,
    seed: int = 0,
    n_splits: int = 100,
    step: float = 0.1,
    convention: str = "umsi",
) -> torch.Tensor:
    """AUC-Borji per image (``AUC_Borji.m``; the same in both conventions): P min–max scaled to [0, 1] (the
    thresholds are absolute); positives = values at the Nfix fixated pixels (binary); each of ``n_splits`` splits
    draws Nfix negatives uniformly with replacement from all pixels; thresholds 0 : ``step`` : max; TP/FP = fraction
    of positives/negatives ≥ t; trapezoidal area, averaged over the splits.

    Seeded: each image draws from a ``torch.Generator`` seeded with ``seed`` (on the CPU), so an image's value does not
    depend on its batch or device. pysaliency's ``AUC`` (uniform nonfixations, all thresholds) is the exact,
    sampling-free limit of this (n_splits → ∞, step → 0).
    Degenerate: 0.5 for an image without fixations and for a constant map."""
    _check(convention)
    p = _rows(pred)
    scaled = _MinMaxScaled(p)
    fixated = _Fixated(fixations, _batch_maps(pred).shape, p.device, binary=True)
    out = torch.full((p.shape[0],), 0.5, dtype=torch.float64, device=p.device)
    generator = torch.Generator()
    for i, pixels in enumerate(fixated.pixel.split(fixated.counts())):
        if pixels.numel() == 0:
            continue
        generator.manual_seed(seed)
        picks = torch.randint(0, p.shape[1], (n_splits, pixels.numel()), generator=generator)
        out[i] = _sampled_auc(scaled(i, pixels), scaled(i, picks.to(p.device)), step)
    return out


@_per_image_threads
def sauc(
    pred: torch.Tensor,
    fixations: Fixations,
    nonfixations: Fixations,
    *,
    seed: int = 0,
    n_splits: int = 100,
    step: float = 0.1,
    convention: str = "umsi",
) -> torch.Tensor:
    """Shuffled AUC per image (``AUC_shuffled.m``; the same in both conventions): like :func:`auc_borji`, but the
    negatives of each split are min(Nfix, M) pixels drawn **without** replacement from the M fixated pixels of
    ``nonfixations`` — the fixations of OTHER images (a binary map batch (B, H, W), e.g. from
    :func:`other_image_fixations`, or per-image point lists, already in this image's coordinates; used as the binary
    set of pixels, as MIT's ``otherMap``). Seeded per image like :func:`auc_borji`.
    pysaliency's ``sAUC`` instead uses all other fixations (duplicates count) with all thresholds.
    Degenerate: 0.5 for an image without fixations, without nonfixations, or with a constant map."""
    _check(convention)
    p = _rows(pred)
    shape = _batch_maps(pred).shape
    scaled = _MinMaxScaled(p)
    fixated = _Fixated(fixations, shape, p.device, binary=True)
    other = _Fixated(nonfixations, shape, p.device, binary=True)
    out = torch.full((p.shape[0],), 0.5, dtype=torch.float64, device=p.device)
    generator = torch.Generator()
    pairs = zip(fixated.pixel.split(fixated.counts()), other.pixel.split(other.counts()), strict=True)
    for i, (pixels, locations) in enumerate(pairs):
        if pixels.numel() == 0 or locations.numel() == 0:
            continue
        generator.manual_seed(seed)
        take = min(pixels.numel(), locations.numel())
        order = _first_in_random_order(torch.rand(n_splits, locations.numel(), generator=generator), take)
        out[i] = _sampled_auc(scaled(i, pixels), scaled(i, locations[order.to(p.device)]), step)
    return out


def _first_in_random_order(keys: torch.Tensor, take: int) -> torch.Tensor:
    """The positions ``keys.argsort(dim=1)[:, :take]`` selects in each row of (S, M) random keys, as a set (any order):
    one partial selection (``topk``) instead of a full sort; a row where another key ties the largest one taken
    depends on how the sort orders ties and is sorted in full, so the set is always the sort's."""
    values, positions = keys.topk(take, dim=1, largest=False, sorted=False)
    boundary = values.max(dim=1, keepdim=True).values
    tied = ((keys <= boundary).sum(dim=1) != take).nonzero().squeeze(1)
    if tied.numel():
        positions[tied] = keys[tied].argsort(dim=1)[:, :take]
    return positions


__all__ = [
    "CONSTANT_RTOL",
    "CONVENTIONS",
    "CONVENTION_FREE",
    "EPS",
    "MATLAB_EPS",
    "accuracy",
    "auc_borji",
    "auc_judd",
    "cc",
    "center_bias_map",
    "correlation_coefficient",
    "evaluation_kl",
    "fixations_to_map",
    "gaussian_blur",
    "info_gain",
    "kl",
    "kl_divergence",
    "max_normalize",
    "mean_squared_error",
    "minmax_normalize",
    "normalized_scanpath_saliency",
    "nss",
    "other_image_fixations",
    "per_class_accuracy",
    "r2",
    "rmse",
    "sauc",
    "sim",
    "sum_normalize",
]
