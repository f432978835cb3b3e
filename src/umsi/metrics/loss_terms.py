"""Loss building blocks: per-image measures that :mod:`umsi.losses` trains with (differentiable, dtype-preserving).

Shapes: maps (B, H, W), (B, 1, H, W) or (B, N); every measure returns a (B,) tensor. They follow the official UMSI
Keras losses (umsi-reference §4): ε = 1e-7 (Keras ``K.epsilon()``), the prediction divided by its maximum before KL
and NSS, KL(target ‖ prediction) in nats. The normalisation helpers are shared with :mod:`umsi.metrics.reference`:
``eps > 0`` is the differentiable loss form (a floored denominator); ``eps = 0`` the exact form, where a zero
denominator leaves the numerator (which is then zero).
"""

from __future__ import annotations

import torch

EPS = 1e-7
"""Keras ``K.epsilon()``: the official UMSI losses and the ``"umsi"`` evaluation."""


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


__all__ = [
    "EPS",
    "correlation_coefficient",
    "evaluation_kl",
    "kl_divergence",
    "max_normalize",
    "mean_squared_error",
    "minmax_normalize",
    "normalized_scanpath_saliency",
    "sum_normalize",
]
