"""Saliency measures: per-image functions (``functional``) shared by the losses and the evaluation, and the
DDP-safe torchmetrics wrappers over them (``collection``)."""

from umsi.metrics import functional
from umsi.metrics.collection import SALIENCY_METRICS, ClassAccuracy, MeanSaliencyMetric

__all__ = ["SALIENCY_METRICS", "ClassAccuracy", "MeanSaliencyMetric", "functional"]
