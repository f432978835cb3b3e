"""Per-image saliency measures on batched tensors; the losses are built from the same functions.

Every function takes maps of shape (B, H, W) or (B, 1, H, W) and returns a (B,) tensor. They are
differentiable and NaN-free on degenerate inputs (all-zero or constant maps, images without fixations).
Conventions follow the official UMSI Keras code (umsi-reference §4–§5): ε = 1e-7 (Keras ``K.epsilon()``),
the prediction is divided by its maximum before KL, CC and NSS, KL is KL(target ‖ prediction) in nats.
"""

from __future__ import annotations

import torch

EPS = 1e-7


def _flat(x: torch.Tensor) -> torch.Tensor:
    """(B, ...) → (B, N) in float32 or wider."""
    x = x.reshape(x.shape[0], -1)
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def max_normalize(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """(B, N) → x / max(x) per image; an all-zero map stays zero (the max is floored at ``eps``)."""
    return x / x.amax(dim=1, keepdim=True).clamp_min(eps)


def minmax_normalize(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """(B, ...) → (x − min) / (max − min) per image, in [0, 1]; a constant map becomes all zeros."""
    flat = _flat(x)
    lo = flat.amin(dim=1, keepdim=True)
    hi = flat.amax(dim=1, keepdim=True)
    return ((flat - lo) / (hi - lo).clamp_min(eps)).reshape(x.shape)


def sum_normalize(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """(B, N) → x / (Σx + ε) per image (a probability distribution for non-negative maps)."""
    return x / (x.sum(dim=1, keepdim=True) + eps)


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
    p = _flat(pred)
    g = _flat(target)
    p = p - p.mean(dim=1, keepdim=True)
    g = g - g.mean(dim=1, keepdim=True)
    denom = ((p * p).sum(dim=1) * (g * g).sum(dim=1)).clamp_min(eps * eps).sqrt()
    return (p * g).sum(dim=1) / denom


def normalized_scanpath_saliency(pred: torch.Tensor, fixations: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """NSS per image: P ← P/max P, z-scored with the population std (+ε); Σ F·z / (ΣF + ε) over the binary
    fixation map F. Exactly 0 for an image without fixations or a constant prediction."""
    p = max_normalize(_flat(pred), eps)
    f = _flat(fixations)
    mean = p.mean(dim=1, keepdim=True)
    # sqrt of a floored variance: the gradient of std is infinite at zero variance.
    std = (p - mean).pow(2).mean(dim=1, keepdim=True).clamp_min(eps * eps).sqrt()
    z = (p - mean) / (std + eps)
    return (f * z).sum(dim=1) / (f.sum(dim=1) + eps)


def mean_squared_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of (P − G)² per image (raw prediction: anchors its scale to the [0, 1] targets)."""
    return (_flat(pred) - _flat(target)).pow(2).mean(dim=1)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, K) scores, (B,) class indices → (B,) 1.0 where the arg-max is the label, else 0.0."""
    return (logits.argmax(dim=1) == labels).float()


def center_bias_map(height: int, width: int, sigma: float = 0.25) -> torch.Tensor:
    """Centred anisotropic Gaussian (H, W), max 1, std = ``sigma`` × each side: the classic baseline."""
    ys = torch.arange(height, dtype=torch.float32) - (height - 1) / 2
    xs = torch.arange(width, dtype=torch.float32) - (width - 1) / 2
    gy = torch.exp(-0.5 * (ys / (sigma * height)) ** 2)
    gx = torch.exp(-0.5 * (xs / (sigma * width)) ** 2)
    return gy[:, None] * gx[None, :]


def evaluation_kl(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL as the official evaluation reports it: prediction min–max scaled first, then :func:`kl_divergence`."""
    return kl_divergence(minmax_normalize(pred), target)


__all__ = [
    "EPS",
    "accuracy",
    "center_bias_map",
    "correlation_coefficient",
    "evaluation_kl",
    "kl_divergence",
    "max_normalize",
    "mean_squared_error",
    "minmax_normalize",
    "normalized_scanpath_saliency",
    "sum_normalize",
]
