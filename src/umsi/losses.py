"""UMSI multi-task loss: weighted KL, CC, NSS, MSE and classification terms (umsi-reference §4).

L = w_kl·KL + w_cc·CC + w_nss·NSS + w_mse·MSE + w_cls·CLS (+ w_sim·SIM when w_sim ≠ 0, the UMSI++ recipe), each
term a batch mean of per-image values. CC, NSS and SIM are similarities, so their weights are negative in the
official recipe (CC −3, NSS −5) and in UMSI++'s (10·KL − 3·CC − 1·SIM − 0.5·NSS, NSS on the heatmap).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from umsi.metrics.functional import (
    EPS,
    correlation_coefficient,
    kl_divergence,
    mean_squared_error,
    normalized_scanpath_saliency,
    sum_normalize,
)

TERMS = ("kl", "cc", "nss", "mse", "cls", "sim")
CLASSIFICATION_KINDS = ("bce", "ce")
NSS_TARGETS = ("fixations", "heatmap")


def similarity(pred: torch.Tensor, target: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """SIM per image, differentiable: Σ min(P/ΣP, G/ΣG) over pixels (Judd et al. 2012; 1 = identical
    distributions, 0 = disjoint). (B, 1, H, W) × 2 → (B,)."""
    return torch.minimum(sum_normalize(_flat(pred), eps), sum_normalize(_flat(target), eps)).sum(dim=1)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def softmax_binary_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Keras ``binary_crossentropy`` on the softmax output, as the official run: p = softmax(logits) clipped to
    [ε, 1−ε]; mean over the K classes of −[y log p + (1−y) log(1−p)] with one-hot y. (B, K), (B,) → (B,)."""
    p = logits.float().softmax(dim=1).clamp(eps, 1 - eps)
    y = F.one_hot(labels, num_classes=logits.shape[1]).to(p.dtype)
    return -(y * p.log() + (1 - y) * (1 - p).log()).mean(dim=1)


def categorical_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Standard softmax cross-entropy per sample. (B, K), (B,) → (B,)."""
    return F.cross_entropy(logits.float(), labels, reduction="none")


@dataclass
class LossOutput:
    """total: scalar to optimise; weighted: w·term per term; raw: unweighted batch means per term."""

    total: torch.Tensor
    weighted: dict[str, torch.Tensor]
    raw: dict[str, torch.Tensor]


class UMSILoss(nn.Module):
    """Weighted sum of the saliency and classification terms; weights come from config (``loss.*``)."""

    def __init__(
        self,
        kl: float = 10.0,
        cc: float = -3.0,
        nss: float = 0.0,
        mse: float = 0.0,
        cls: float = 0.0,
        classification: str = "bce",
        eps: float = EPS,
        sim: float = 0.0,
        nss_target: str = "fixations",
    ) -> None:
        super().__init__()
        if classification not in CLASSIFICATION_KINDS:
            raise ValueError(f"loss.classification={classification!r}: choose one of {CLASSIFICATION_KINDS}")
        if nss_target not in NSS_TARGETS:
            raise ValueError(f"loss.nss_target={nss_target!r}: choose one of {NSS_TARGETS}")
        self.weights = {"kl": kl, "cc": cc, "nss": nss, "mse": mse, "cls": cls}
        if sim:
            self.weights["sim"] = sim
        self.nss_target = nss_target
        self.classification = classification
        self.eps = eps

    def forward(
        self,
        saliency: torch.Tensor,
        logits: torch.Tensor,
        target: torch.Tensor,
        fixations: torch.Tensor,
        labels: torch.Tensor,
    ) -> LossOutput:
        """saliency, target, fixations: (B, 1, H, W) (prediction raw ≥ 0, target in [0, 1], fixations binary);
        logits (B, K); labels (B,) class indices. With ``nss_target="heatmap"`` NSS weighs the z-scored
        prediction by the target map instead of the fixations (UMSI++)."""
        saliency = saliency.float()
        if self.classification == "bce":
            cls = softmax_binary_cross_entropy(logits, labels, self.eps)
        else:
            cls = categorical_cross_entropy(logits, labels)
        raw = {
            "kl": kl_divergence(saliency, target, self.eps).mean(),
            "cc": correlation_coefficient(saliency, target, self.eps).mean(),
            "nss": normalized_scanpath_saliency(
                saliency, target if self.nss_target == "heatmap" else fixations, self.eps
            ).mean(),
            "mse": mean_squared_error(saliency, target).mean(),
            "cls": cls.mean(),
        }
        if "sim" in self.weights:
            raw["sim"] = similarity(saliency, target, self.eps).mean()
        weighted = {name: self.weights[name] * value for name, value in raw.items()}
        return LossOutput(torch.stack(list(weighted.values())).sum(), weighted, raw)
