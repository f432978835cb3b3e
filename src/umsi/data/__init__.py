"""Data: dataset layouts, transforms, datasets, DataModules and the synthetic generator."""

from umsi.data.datamodules import GdiDataModule, Imp1kDataModule, SaliconDataModule, SaliencyDataModule
from umsi.data.datasets import MixingSampler, SaliencyDataset
from umsi.data.layouts import DatasetLayoutError, SaliencyItem
from umsi.data.mix import MixDataModule, RegistryDataModule

__all__ = [
    "DatasetLayoutError",
    "GdiDataModule",
    "Imp1kDataModule",
    "MixDataModule",
    "MixingSampler",
    "RegistryDataModule",
    "SaliconDataModule",
    "SaliencyDataModule",
    "SaliencyDataset",
    "SaliencyItem",
]
