"""Data: dataset layouts, transforms, datasets, DataModules and the synthetic generator."""

from umsi.data.datamodules import Imp1kDataModule, SaliconDataModule, SaliencyDataModule
from umsi.data.datasets import MixingSampler, SaliencyDataset
from umsi.data.layouts import DatasetLayoutError, SaliencyItem

__all__ = [
    "DatasetLayoutError",
    "Imp1kDataModule",
    "MixingSampler",
    "SaliconDataModule",
    "SaliencyDataModule",
    "SaliencyDataset",
    "SaliencyItem",
]
