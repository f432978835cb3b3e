"""Saliency measures: per-image functions (``functional``) shared by the losses and the evaluation, and the
DDP-safe torchmetrics wrappers over them (``collection``). Names load on first use (PEP 562): ``umsi.load`` and
the server use ``functional`` without torchmetrics."""

from __future__ import annotations

from umsi.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "umsi.metrics.functional": ("functional",),
        "umsi.metrics.collection": ("SALIENCY_METRICS", "ClassAccuracy", "MeanSaliencyMetric"),
    },
)
