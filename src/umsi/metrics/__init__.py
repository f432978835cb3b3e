"""Saliency measures: per-image functions (``functional``) shared by the losses and the evaluation."""

from umsi.metrics import functional

__all__ = ["functional"]
