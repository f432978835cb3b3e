"""torchmetrics wrappers that average per-image saliency measures and count class hits, DDP-correctly.

Every state is a SUM (of per-image values, of images, of hits) reduced with ``dist_reduce_fx="sum"``, so under DDP
the result is the mean over all images of all ranks — not a mean of per-rank or per-batch means (which would
over-weight short batches and ranks with fewer valid images).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torchmetrics import Metric

from umsi.metrics import functional as M

SALIENCY_METRICS: dict[str, Callable[..., torch.Tensor]] = {
    "cc": M.cc,
    "kl": M.kl,
    "sim": M.sim,
    "r2": M.r2,
    "rmse": M.rmse,
    "nss": M.nss,
    "auc_judd": M.auc_judd,
    "auc_borji": M.auc_borji,
    "sauc": M.sauc,
    "info_gain": M.info_gain,
}
"""name → per-image function of :mod:`umsi.metrics.functional` (``fn(pred, target_or_fixations, ...)``)."""


def _split_kwargs(fn: Callable[..., Any], kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """kwargs → (those ``fn`` accepts, the rest: torchmetrics ``Metric`` options)."""
    accepted = inspect.signature(fn).parameters
    return {k: v for k, v in kwargs.items() if k in accepted}, {k: v for k, v in kwargs.items() if k not in accepted}


class MeanSaliencyMetric(Metric):
    """Mean over images of one per-image measure of :mod:`umsi.metrics.functional`.

    ``MeanSaliencyMetric(name, convention="umsi", **kwargs)``: ``name`` is a key of :data:`SALIENCY_METRICS`;
    keyword arguments the function accepts (``seed``, ``n_splits``, ``step`` …) are passed to every call, the rest go
    to :class:`torchmetrics.Metric` (e.g. ``sync_on_compute``).

    ``update(pred, target_or_fixations, mask=None, **call_kwargs)`` adds the per-image values of a batch (only where
    the boolean (B,) ``mask`` is True, e.g. images that have fixations); ``call_kwargs`` carry per-batch arguments
    such as ``baseline`` (``info_gain``) or ``nonfixations`` (``sauc``). ``compute()`` is Σ value / count over all
    images seen (all ranks), and 0.0 when no image was counted: check ``count`` to tell "no images" from a real 0.
    """

    is_differentiable = False
    full_state_update = False

    value_sum: torch.Tensor
    count: torch.Tensor

    def __init__(self, name: str, convention: str = "umsi", **kwargs: Any) -> None:
        if name not in SALIENCY_METRICS:
            raise ValueError(f"unknown saliency metric {name!r}: choose one of {sorted(SALIENCY_METRICS)}")
        if convention not in M.CONVENTIONS:
            raise ValueError(f"convention={convention!r}: choose one of {M.CONVENTIONS}")
        self._fn = SALIENCY_METRICS[name]
        fn_kwargs, metric_kwargs = _split_kwargs(self._fn, kwargs)
        super().__init__(**metric_kwargs)
        self.name, self.convention, self.fn_kwargs = name, convention, fn_kwargs
        self.add_state("value_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self,
        pred: torch.Tensor,
        target: Any,
        mask: torch.Tensor | None = None,
        **call_kwargs: Any,
    ) -> None:
        values = self._fn(pred, target, convention=self.convention, **self.fn_kwargs, **call_kwargs)
        values = values.to(device=self.value_sum.device, dtype=self.value_sum.dtype)
        if mask is not None:
            values = values[mask.reshape(-1).to(device=values.device, dtype=torch.bool)]
        self.value_sum += values.sum()
        self.count += values.numel()

    def compute(self) -> torch.Tensor:
        return torch.where(self.count > 0, self.value_sum / self.count.clamp_min(1), torch.zeros_like(self.value_sum))


class ClassAccuracy(Metric):
    """Overall and per-class accuracy of the class head from summed hit and image counts.

    ``update(logits (B, K), labels (B,))``: labels < 0 ("no class label") are ignored. ``compute()`` → overall
    accuracy Σ correct / Σ total (0.0 when no labelled image was seen). :meth:`per_class` → (K,) accuracies (0.0 for a
    class without images; the ``total`` state tells which). States ``correct`` and ``total`` are (K,) int64 counts.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    correct: torch.Tensor
    total: torch.Tensor

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.add_state("correct", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        correct, total = M.per_class_accuracy(logits, labels.to(logits.device), self.num_classes)
        self.correct += correct.to(self.correct.device)
        self.total += total.to(self.total.device)

    def compute(self) -> torch.Tensor:
        total = self.total.sum().double()
        return torch.where(total > 0, self.correct.sum() / total.clamp_min(1), torch.zeros_like(total))

    def per_class(self) -> torch.Tensor:
        """(K,) float64 accuracy per true class over all ranks (synchronises like ``compute``; 0.0 where a class has
        no images). Call it before the metric is reset."""
        with self.sync_context(should_sync=self.sync_on_compute):
            total = self.total.double()
            return torch.where(total > 0, self.correct / total.clamp_min(1), torch.zeros_like(total))
