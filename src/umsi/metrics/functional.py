"""Per-image saliency measures on batched tensors; the training losses are built from the same helpers.

Shapes: maps are (B, H, W) or (B, 1, H, W); every measure returns a (B,) tensor (one value per image).

Two groups of functions live here:

* **Loss building blocks** (differentiable, dtype-preserving, used by :mod:`umsi.losses`): :func:`kl_divergence`,
  :func:`correlation_coefficient`, :func:`normalized_scanpath_saliency`, :func:`mean_squared_error`. They follow the
  official UMSI Keras losses (umsi-reference §4): ε = 1e-7 (Keras ``K.epsilon()``), the prediction divided by its
  maximum before KL and NSS, KL(target ‖ prediction) in nats.
* **Evaluation metrics** (not differentiable, computed in float64): :func:`cc`, :func:`kl`, :func:`sim`, :func:`r2`,
  :func:`rmse`, :func:`nss`, :func:`auc_judd`, :func:`auc_borji`, :func:`sauc`, :func:`info_gain`. Each takes a
  keyword ``convention``:

  - ``"umsi"`` (default): the official UMSI evaluation (MDS ``src/eval.py``, umsi-reference §5). The prediction is
    min–max scaled to [0, 1] first; a continuous target map whose maximum exceeds 1 is divided by 255.
  - ``"mit"``: the MIT saliency benchmark MATLAB code (``cvzoya/saliency/code_forMetrics``), eps = 2.2204e-16
    (MATLAB ``eps``), without any resizing (maps must already have the fixation map's size).

  Where one convention has no definition of a metric, both use the other's (said in each docstring).

Fixations are given either as maps (B, H, W) / (B, 1, H, W) or as a list of B point arrays/tensors of shape (N_i, 2)
holding 0-based (x, y) pixel coordinates (truncated to int, as pysaliency's ``x_int``; out-of-range points raise).
Fixation weighting, shared by :func:`nss` and :func:`info_gain`:

- ``"mit"``: binary, pixels with F > 0 (duplicates at one pixel collapse into one, as in the MIT code);
- ``"umsi"``: F is used as weights, Σ F·v / Σ F (``nss_npy``); a point list becomes a **count** map, so duplicate
  fixations count once each — the per-fixation average that pysaliency uses (``average='fixation'``).

The AUC family always uses the binary set of fixated pixels (MIT). pysaliency instead evaluates every fixation
*coordinate* (duplicates count), so it agrees with the binary conventions only for duplicate-free fixations.

No measure returns NaN or ±inf: degenerate inputs (constant or all-zero maps, images without fixations) have the
defined values stated in each docstring. Two rules recur:

- *constant map*: min–max scaling maps it to all zeros;
- *distribution* (``_to_distribution``): after the convention's scaling, a map with zero total mass is taken as the
  uniform distribution (pysaliency's ``convert_saliency_map_to_density`` rule; MATLAB gives NaN there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

EPS = 1e-7
"""Keras ``K.epsilon()``: the official UMSI losses and the ``"umsi"`` evaluation."""
MATLAB_EPS = 2.2204e-16
"""MATLAB ``eps`` as written in the MIT benchmark code and pysaliency's ``MIT_KLDiv``."""
CONVENTIONS = ("umsi", "mit")

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
# ---------------------------------------------------------------------------------------------------------------


def _check(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention={convention!r}: choose one of {CONVENTIONS}")
    return convention


def _work(x: torch.Tensor) -> torch.Tensor:
    """Maps → (B, H, W) in float64."""
    return _batch_maps(x).to(torch.float64)


def _pred(pred: torch.Tensor, convention: str) -> torch.Tensor:
    """(B, N) prediction: ``"umsi"`` min–max scales it to [0, 1] (constant → 0); ``"mit"`` leaves it as is."""
    p = _flat(_work(pred))
    return minmax_normalize(p, eps=0.0) if _check(convention) == "umsi" else p


def _target(target: torch.Tensor, pred: torch.Tensor, convention: str) -> torch.Tensor:
    """(B, N) continuous target: ``"umsi"`` divides a map whose max exceeds 1 by 255 (8-bit maps)."""
    g = _work(target)
    if g.shape != _batch_maps(pred).shape:
        raise ValueError(f"target {tuple(g.shape)} and prediction {tuple(_batch_maps(pred).shape)} differ in shape")
    g = _flat(g)
    if convention == "umsi":
        g = torch.where(g.amax(dim=1, keepdim=True) > 1, g / 255.0, g)
    return g


def _to_distribution(x: torch.Tensor, minmax: bool) -> torch.Tensor:
    """(B, N) map → probability distribution: min–max scaled (``minmax``) or, if it has negative values, shifted
    to minimum 0; then divided by its sum. A map with zero total mass becomes uniform (1/N)."""
    x = minmax_normalize(x, eps=0.0) if minmax else x - x.amin(dim=1, keepdim=True).clamp_max(0)
    total = x.sum(dim=1, keepdim=True)
    return torch.where(total > 0, x / torch.where(total > 0, total, torch.ones_like(total)), 1.0 / x.shape[1])


def _fixation_weights(fixations: Fixations, pred: torch.Tensor, binary: bool) -> torch.Tensor:
    p = _batch_maps(pred)
    weights = fixations_to_map(fixations, p.shape[-2], p.shape[-1], binary=binary, device=p.device)
    if weights.shape[0] != p.shape[0]:
        raise ValueError(f"{weights.shape[0]} fixation sets for a batch of {p.shape[0]} predictions")
    return _flat(weights)


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ w·v / Σ w per row, 0 where Σ w = 0 (no fixations)."""
    return _safe_divide((weights * values).sum(dim=1), weights.sum(dim=1), 0.0)


def cc(pred: torch.Tensor, target: torch.Tensor, *, convention: str = "umsi") -> torch.Tensor:
    """Linear correlation coefficient (Pearson) between prediction and continuous target map, per image.

    ``"umsi"`` (``cc_npy``): prediction min–max scaled, target ÷255 if its max > 1, then Pearson. ``"mit"``
    (``CC.m``): z-score both maps, mean of the product (= Pearson). Pearson is invariant to those affine scalings, so
    both conventions give the same value; computed in centred form in float64.
    Degenerate: 0 when either map is constant (incl. all-zero). Range [−1, 1]."""
    return _pearson(_pred(pred, convention), _target(target, pred, convention))


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
    if _check(convention) == "umsi":
        return kl_divergence(_pred(pred, convention), _target(target, pred, convention), EPS)
    p = _to_distribution(_pred(pred, convention), minmax=False)
    g = _to_distribution(_target(target, pred, convention), minmax=False)
    return (g * torch.log(MATLAB_EPS + g / (p + MATLAB_EPS))).sum(dim=1)


def sim(pred: torch.Tensor, target: torch.Tensor, *, convention: str = "umsi") -> torch.Tensor:
    """Similarity (histogram intersection) per image: both maps min–max scaled to [0, 1], divided by their sums,
    Σ min(P, G). Same in both conventions (``sim_npy`` and ``similarity.m``), in [0, 1].

    pysaliency's ``SIM`` does **not** min–max scale (it only shifts maps with negative values), so it agrees only
    when both maps have minimum 0; in general ``sim(P, G) = pysaliency.metrics.SIM(P − min P, G − min G)``.
    Degenerate: a constant (incl. all-zero) map becomes uniform, so SIM = Σ min(1/N, G) (1 if both constant)."""
    _check(convention)
    p = _to_distribution(_pred(pred, convention), minmax=True)
    g = _to_distribution(_target(target, pred, convention), minmax=True)
    return torch.minimum(p, g).sum(dim=1)


def r2(pred: torch.Tensor, target: torch.Tensor, *, convention: str = "umsi") -> torch.Tensor:
    """Coefficient of determination per image (``r2`` in the UMSI eval; MIT has none, so both conventions use it):
    P min–max scaled to [0, 1], G ÷255 if max > 1; R² = 1 − Σ(P − G)² / Σ(G − mean G)².
    Degenerate: constant target (Σ(G − mean G)² = 0) → 1 if P equals G exactly, else 0 (scikit-learn's rule)."""
    p = minmax_normalize(_flat(_work(pred)), eps=0.0)
    g = _target(target, pred, "umsi")
    residual = (p - g).pow(2).sum(dim=1)
    spread = (g - g.mean(dim=1, keepdim=True)).pow(2).sum(dim=1)
    perfect = (residual == 0).to(p.dtype)
    return torch.where(spread > 0, 1 - _safe_divide(residual, spread, 0.0), perfect)


def rmse(pred: torch.Tensor, target: torch.Tensor, *, convention: str = "umsi") -> torch.Tensor:
    """Root mean squared error per image (``rmse`` in the UMSI eval; MIT has none, so both conventions use it):
    P min–max scaled to [0, 1] (constant → 0), G ÷255 if max > 1; √mean((G − P)²). Always finite, in [0, 1]."""
    p = minmax_normalize(_flat(_work(pred)), eps=0.0)
    return (p - _target(target, pred, "umsi")).pow(2).mean(dim=1).sqrt()


def nss(pred: torch.Tensor, fixations: Fixations, *, convention: str = "umsi") -> torch.Tensor:
    """Normalized scanpath saliency per image: mean of the z-scored prediction at the fixations.

    ``"umsi"`` (``nss_npy``): P min–max scaled, z = (P − mean)/std with the **population** std (N); Σ F·z / Σ F with F
    used as weights (a point list → count map: every fixation counts, duplicates included — equals pysaliency's
    ``NSS`` averaged per fixation, which also uses the population std). ``"mit"`` (``NSS.m``): z-score with the
    **N − 1** std (MATLAB ``std``), mean over the fixated pixels F > 0 (duplicates collapse); this is the umsi value
    × √((N − 1)/N) for binary F.
    Degenerate: 0 for an image without fixations and for a constant prediction (z ≡ 0)."""
    mit = _check(convention) == "mit"
    z = _zscore(_pred(pred, convention), correction=1 if mit else 0)
    return _weighted_mean(z, _fixation_weights(fixations, pred, binary=mit))


def info_gain(
    pred: torch.Tensor, fixations: Fixations, baseline: torch.Tensor, *, convention: str = "umsi"
) -> torch.Tensor:
    """Information gain of the prediction over ``baseline`` (bits per fixation), per image (``InfoGain.m``):
    P and B (the baseline, (B, H, W), (B, 1, H, W) or one (H, W) map for all) min–max scaled and divided by their
    sums; mean over fixations of log₂(eps + P) − log₂(eps + B), eps = 2.2204e-16 in both conventions (UMSI has no
    IG). Fixation weighting: binary F > 0 (``"mit"``) or F as weights / point counts (``"umsi"``), see the module.
    Note pysaliency's ``information_gain`` needs a probabilistic model (log-densities), not these maps.
    Degenerate: 0 for an image without fixations; a constant (incl. all-zero) map is the uniform distribution, so
    IG = 0 when both maps are constant."""
    mit = _check(convention) == "mit"
    p_maps = _batch_maps(pred)
    base = baseline.to(p_maps.device)
    base = (base.expand(p_maps.shape) if base.dim() == 2 else _batch_maps(base)).expand(p_maps.shape)
    p = _to_distribution(_flat(_work(p_maps)), minmax=True)
    b = _to_distribution(_flat(_work(base)), minmax=True)
    values = torch.log2(MATLAB_EPS + p) - torch.log2(MATLAB_EPS + b)
    return _weighted_mean(values, _fixation_weights(fixations, pred, binary=mit))


def _trapezoid(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Trapezoidal area under y(x) along the last dimension."""
    return ((x[..., 1:] - x[..., :-1]) * (y[..., 1:] + y[..., :-1])).sum(dim=-1) / 2


def _fraction_at_least(sorted_values: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Fraction of ``sorted_values`` (ascending, last dim) that are ≥ each threshold."""
    n = sorted_values.shape[-1]
    below = torch.searchsorted(sorted_values.contiguous(), thresholds.contiguous(), side="left")
    return (n - below).to(sorted_values.dtype) / n


def auc_judd(pred: torch.Tensor, fixations: Fixations, *, convention: str = "umsi") -> torch.Tensor:
    """AUC-Judd per image (``AUC_Judd.m``; the same in both conventions, UMSI had none of its own):
    positives = values at the fixated pixels (binary, duplicates collapse), negatives = all unfixated pixels,
    thresholds = the distinct fixated values; TP = fraction of fixated pixels ≥ t, FP = fraction of unfixated
    pixels ≥ t; ROC closed by (0, 0) and (1, 1), trapezoidal area.

    **No jitter**: MATLAB adds U(0, 1e-7) noise to break ties; here ties are handled exactly (counts of values ≥ t),
    which equals the MATLAB result for tie-free maps and its expectation over the jitter otherwise (the trapezoid
    across a tie is the average of the random orderings). Equals pysaliency's ``AUC_Judd(..., jitter=False)``
    (``nonfixations='unfixated'``, ``thresholds='fixations'``) for duplicate-free fixations. Invariant to monotone
    rescaling of the prediction (so the umsi min–max step changes nothing).
    Degenerate: 0.5 for an image without fixations or with every pixel fixated; a constant map gives 0.5."""
    _check(convention)
    p = _flat(_work(pred))
    fix = _fixation_weights(fixations, pred, binary=True) > 0
    out = torch.full((p.shape[0],), 0.5, dtype=p.dtype, device=p.device)
    for i in range(p.shape[0]):
        positives, negatives = p[i][fix[i]], p[i][~fix[i]]
        if positives.numel() == 0 or negatives.numel() == 0:
            continue
        positives, negatives = positives.sort().values, negatives.sort().values
        thresholds = torch.unique(positives).flip(0)  # descending
        tp = _fraction_at_least(positives, thresholds)
        fp = _fraction_at_least(negatives, thresholds)
        zero, one = p.new_zeros(1), p.new_ones(1)
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
    p = minmax_normalize(_flat(_work(pred)), eps=0.0)
    fix = _fixation_weights(fixations, pred, binary=True) > 0
    out = torch.full((p.shape[0],), 0.5, dtype=p.dtype, device=p.device)
    generator = torch.Generator()
    for i in range(p.shape[0]):
        positives = p[i][fix[i]]
        if positives.numel() == 0:
            continue
        generator.manual_seed(seed)
        picks = torch.randint(0, p.shape[1], (n_splits, positives.numel()), generator=generator)
        out[i] = _sampled_auc(positives, p[i][picks.to(p.device)], step)
    return out


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
    p = minmax_normalize(_flat(_work(pred)), eps=0.0)
    fix = _fixation_weights(fixations, pred, binary=True) > 0
    other = _fixation_weights(nonfixations, pred, binary=True) > 0
    out = torch.full((p.shape[0],), 0.5, dtype=p.dtype, device=p.device)
    generator = torch.Generator()
    for i in range(p.shape[0]):
        positives = p[i][fix[i]]
        locations = other[i].nonzero().squeeze(1)
        if positives.numel() == 0 or locations.numel() == 0:
            continue
        generator.manual_seed(seed)
        take = min(positives.numel(), locations.numel())
        order = torch.rand(n_splits, locations.numel(), generator=generator).argsort(dim=1)[:, :take]
        out[i] = _sampled_auc(positives, p[i][locations[order.to(p.device)]], step)
    return out


__all__ = [
    "CONVENTIONS",
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
