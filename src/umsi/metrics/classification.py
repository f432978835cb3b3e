"""Classification measures per image and per class (the classifier head of UMSI)."""

from __future__ import annotations

import torch


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


__all__ = ["accuracy", "per_class_accuracy"]
