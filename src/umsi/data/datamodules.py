"""LightningDataModules: SALICON (pretraining), Imp1k with SALICON mixed in (finetuning), GDI (evaluation)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import ConcatDataset, DataLoader

from umsi.data.cache import ensure_cache
from umsi.data.datasets import MixingSampler, SaliencyDataset, salicon_mix
from umsi.data.layouts import (
    NATURAL_IMAGES,
    SaliencyItem,
    class_names,
    gdi_items,
    imp1k_items,
    imp1k_split_file,
    salicon_items,
)
from umsi.data.splits import dataset_split
from umsi.data.transforms import SampleTransform, build_augmentation, seed_augmentation_worker
from umsi.models.card import DEFAULT_INPUT_SIZE, DEFAULT_OUTPUT_SCALE


class SaliencyDataModule(pl.LightningDataModule):
    """Shared loader settings and preprocessing; subclasses fill ``train_set`` / ``val_set``.

    ``cache_dir``: SALICON and Imp1k splits are decoded and letterboxed once into a cache there
    (:mod:`umsi.data.cache`), rebuilt when a source file or a size changes; incompatible with ``augment``.

    ``split`` (after ``setup``): the file lists of the training and validation sets per dataset
    (:func:`umsi.data.splits.dataset_split`), which the training runner records in the run folder.

    ``validate`` / ``skip_invalid`` are read by the training runner, which checks the files before building the
    datamodule (:mod:`umsi.training.data_check`) and passes the rejected ones as ``skip_files``: items with
    any of those files (image, map or fixation file) are left out.
    """

    def __init__(
        self,
        input_size: Sequence[int] = DEFAULT_INPUT_SIZE,
        output_scale: float = DEFAULT_OUTPUT_SCALE,
        preprocessing: str = "official",
        augment: bool = False,
        augmentation: dict[str, Any] | None = None,
        batch_size: int = 4,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool | str = "auto",
        persistent_workers: bool = False,
        num_classes: int = 6,
        class_mapping: str | None = None,
        classes_root: str | None = None,
        seed: int = 0,
        cache_dir: str | None = None,
        validate: bool = True,
        skip_invalid: bool = False,
        skip_files: Sequence[str] = (),
    ) -> None:
        super().__init__()
        if cache_dir is not None and augment:
            raise ValueError(
                "data.cache_dir stores letterboxed images that data.augment=true cannot augment at the source "
                "size: set data.augment=false or data.cache_dir=null"
            )
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.output_scale = output_scale
        self.preprocessing = preprocessing
        self.augment = augment
        self.augmentation_kwargs = dict(augmentation or {})
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        # auto: pinned when CUDA is available (+12% training images/s measured on an H200, docs/performance.md)
        self.pin_memory = torch.cuda.is_available() if pin_memory == "auto" else bool(pin_memory)
        self.persistent_workers = persistent_workers and num_workers > 0
        self.num_classes = num_classes
        self.class_mapping = class_mapping
        self.classes_root = classes_root
        self.seed = seed
        self.cache_dir = cache_dir
        self.validate, self.skip_invalid = validate, skip_invalid
        self.skip_files = frozenset(Path(p) for p in skip_files)
        self.class_names: list[str] = []
        self.split: dict[str, dict[str, Any]] = {}
        self.train_set: SaliencyDataset | ConcatDataset | None = None
        self.val_set: SaliencyDataset | ConcatDataset | None = None

    def transform(self, train: bool) -> SampleTransform:
        augmentation = None
        if train and self.augment:
            augmentation = build_augmentation(**{"seed": self.seed, **self.augmentation_kwargs})
        return SampleTransform(self.input_size, self.output_scale, self.preprocessing, augmentation)

    def dataset(self, items: Sequence[SaliencyItem], train: bool, name: str) -> SaliencyDataset:
        """A dataset of ``items``, read from the split's cache ``name`` (built or reused here, with a progress
        bar) when ``cache_dir`` is set."""
        transform = self.transform(train)
        cache = None
        if self.cache_dir is not None:
            cache = ensure_cache(self.cache_dir, name, items, transform.input_size, transform.output_size)
        return SaliencyDataset(items, transform, cache)

    def _epoch(self) -> int:
        """The epoch the next training loader is for: Lightning sets samplers' epochs only after it has created
        the loader's iterator, which with workers already holds the first indices; a resumed run would replay
        the indices of epoch 0 without this."""
        trainer = getattr(self, "trainer", None)
        # the epoch Lightning itself gives samplers (current_epoch lags behind it until the loop starts)
        return int(trainer.fit_loop.epoch_progress.current.processed) if trainer is not None else 0

    def _loader(self, dataset, batch_size: int, sampler=None) -> DataLoader:
        """Loaders draw their worker seeds from their own generator seeded with ``seed``, never from the global
        one, and training ones shuffle by (seed, epoch) (``sampler``): a resumed run then sees the same batches
        and the same dropout sequence as an uninterrupted one (see ``RngStateCheckpoint``)."""
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            generator=torch.Generator().manual_seed(self.seed),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            worker_init_fn=seed_augmentation_worker if self.num_workers > 0 else None,
            drop_last=False,
        )

    def finetuning_class_names(self) -> list[str]:
        """The class list finetuning uses, for datasets without their own classes: the mapping file, else the
        Imp1k class folders when ``data.classes_root`` exists, else placeholders with natural_images last."""
        if self.class_mapping or (self.classes_root and Path(self.classes_root, "imgs").is_dir()):
            return class_names(self.classes_root, self.class_mapping, self.num_classes)
        return [f"design_{i}" for i in range(self.num_classes - 1)] + [NATURAL_IMAGES]

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.val_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()


class SaliconDataModule(SaliencyDataModule):
    """SALICON 2017 train/val (``data.root``); every image has class ``natural_images``."""

    def __init__(self, root: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = root

    def natural_label(self) -> int:
        """Index of ``natural_images`` in the same class list finetuning will use (see
        :meth:`SaliencyDataModule.finetuning_class_names`)."""
        self.class_names = self.finetuning_class_names()
        return self.class_names.index(NATURAL_IMAGES)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        label = self.natural_label()
        train, val = (salicon_items(self.root, split, label, skip=self.skip_files) for split in ("train", "val"))
        self.split = {"salicon": dataset_split(self.root, "SALICON's train and val folders", train, val)}
        self.train_set = self.dataset(train, True, "salicon-train")
        self.val_set = self.dataset(val, False, "salicon-val")

    def train_dataloader(self) -> DataLoader:
        sampler = MixingSampler.shuffling(len(self.train_set), self.seed)
        sampler.set_epoch(self._epoch())
        return self._loader(self.train_set, self.batch_size, sampler=sampler)


class Imp1kDataModule(SaliencyDataModule):
    """Imp1k (``data.root``) with ``salicon_per_epoch`` SALICON training images (``data.salicon_root``) drawn
    afresh into every training epoch, so the classifier keeps seeing ``natural_images`` (all of them, with a
    warning, when there are fewer: :func:`~umsi.data.datasets.salicon_mix`).

    Validation is Imp1k val, plus the first ``val_salicon_items`` SALICON val images when > 0.
    """

    def __init__(
        self,
        root: str,
        salicon_root: str,
        salicon_per_epoch: int = 160,
        val_salicon_items: int = 0,
        val_per_class: int = 40,
        split_file: str | None = "train_test_split_imp1k.json",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.root, self.salicon_root = root, salicon_root
        self.salicon_per_epoch = salicon_per_epoch
        self.val_salicon_items = val_salicon_items
        self.val_per_class = val_per_class
        self.split_file = split_file
        self.sampler: MixingSampler | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.class_names = class_names(self.classes_root or self.root, self.class_mapping, self.num_classes)
        natural = self.class_names.index(NATURAL_IMAGES)
        skip = self.skip_files
        train, val = imp1k_items(self.root, self.class_names, self.val_per_class, self.seed, self.split_file, skip=skip)
        salicon_train = salicon_items(self.salicon_root, "train", natural, key="data.salicon_root", skip=skip)
        val_extra: list[SaliencyItem] = []
        if self.val_salicon_items > 0:
            val_extra = salicon_items(self.salicon_root, "val", natural, key="data.salicon_root", skip=skip)
            val_extra = val_extra[: self.val_salicon_items]
        split_path = imp1k_split_file(self.root, self.split_file)
        absent = f"no {self.split_file}" if self.split_file else "data.split_file=null"
        source = (
            str(split_path)
            if split_path is not None
            else f"{absent}: {self.val_per_class} images per class held out with seed {self.seed}"
        )
        self.split = {
            "imp1k": dataset_split(self.root, source, train, val),
            "salicon": dataset_split(
                self.salicon_root,
                f"train: the SALICON train folder, the pool {self.salicon_per_epoch} images per epoch are drawn from; "
                + (f"val: the first {len(val_extra)} of the SALICON val folder" if val_extra else "val: none"),
                salicon_train,
                val_extra,
            ),
        }
        self.train_set = ConcatDataset(
            [self.dataset(train, True, "imp1k-train"), self.dataset(salicon_train, True, "salicon-train")]
        )
        self.val_set = self.dataset(val + val_extra, False, "imp1k-val")
        per_epoch = salicon_mix(self.salicon_per_epoch, len(salicon_train), self.salicon_root)
        self.sampler = MixingSampler(len(train), len(salicon_train), per_epoch, self.seed)

    def train_dataloader(self) -> DataLoader:
        self.sampler.set_epoch(self._epoch())
        return self._loader(self.train_set, self.batch_size, sampler=self.sampler)


class GdiDataModule(SaliencyDataModule):
    """GDI (``data.root``), evaluation only: ``split`` = ``train``, ``val`` or ``all`` (the paper evaluates on
    all 1078 designs). Items carry label -1 (GDI has no classes) and all-zero fixation maps; ``class_names``
    is still the finetuning class list so reports can name the predicted classes. ``cache_dir`` is not used."""

    def __init__(self, root: str, split: str = "all", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root, self.split = root, split
        self.test_set: SaliencyDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.val_set is not None:
            return
        self.class_names = self.finetuning_class_names()
        self.val_set = SaliencyDataset(gdi_items(self.root, self.split), self.transform(train=False))
        self.test_set = self.val_set

    def train_dataloader(self) -> DataLoader:
        raise RuntimeError(
            "GDI (data=gdi) is an evaluation-only dataset: it has no class labels and the paper evaluates on all "
            "of it. Train with data=salicon / data=imp1k (stage=pretrain|finetune) and use data=gdi to evaluate."
        )
