"""Data: dataset layouts, transforms, datasets, DataModules and the synthetic generator. Names load on first use
(PEP 562): ``umsi.load`` and the server use the transforms and readers without pytorch_lightning (DataModules)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "GdiDataModule": "umsi.data.datamodules",
    "Imp1kDataModule": "umsi.data.datamodules",
    "SaliconDataModule": "umsi.data.datamodules",
    "SaliencyDataModule": "umsi.data.datamodules",
    "MixingSampler": "umsi.data.datasets",
    "SaliencyDataset": "umsi.data.datasets",
    "DatasetLayoutError": "umsi.data.layouts",
    "SaliencyItem": "umsi.data.layouts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'umsi.data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
