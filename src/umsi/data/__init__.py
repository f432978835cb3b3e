"""Data: dataset layouts, transforms, datasets, DataModules and the synthetic generator. Names load on first use
(PEP 562): ``umsi.load`` and the server use the transforms and readers without pytorch_lightning (DataModules)."""

from __future__ import annotations

from umsi.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "umsi.data.datamodules": ("GdiDataModule", "Imp1kDataModule", "SaliconDataModule", "SaliencyDataModule"),
        "umsi.data.datasets": ("MixingSampler", "SaliencyDataset"),
        "umsi.data.layouts": ("DatasetLayoutError", "SaliencyItem"),
    },
)
