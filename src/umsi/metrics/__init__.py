"""Saliency measures: per-image functions (``functional``) shared by the losses and the evaluation, and the
DDP-safe torchmetrics wrappers over them (``collection``). Names load on first use (PEP 562): ``umsi.load`` and
the server use ``functional`` without torchmetrics."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "functional": "umsi.metrics",
    "SALIENCY_METRICS": "umsi.metrics.collection",
    "ClassAccuracy": "umsi.metrics.collection",
    "MeanSaliencyMetric": "umsi.metrics.collection",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name == "functional":
        return importlib.import_module("umsi.metrics.functional")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'umsi.metrics' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
