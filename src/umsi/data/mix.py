"""DataModules over the dataset registry: one registered dataset (``data=ueyes|mit1003|cat2000|osie|folder``) and
the N-way mix (``data=mix``).

A mix entry (``data.datasets``, a list)::

    - name: ueyes                 # the dataset's name in logs (val/<name>/cc …) and in split.json
      layout: ueyes               # a registered layout (default: the name)
      root: /datasets/ueyes
      per_epoch: null             # items drawn afresh into every training epoch (null: all of them)
      weight: null                # or: that fraction of the dataset's training items per epoch (0 < weight <= 1)
      category: null              # class of every item (null: the layout's own category, e.g. UEyes' info.csv)
      stages: null                # stages it applies to, e.g. [finetune] (null: every stage)
      validate: true              # its validation list is validated on and logged as val/<name>/*
      val_items: null             # only the first N validation items (null: all)
      duration: 7s                # … and any option of its layout (split, split_list, test_blocks, sigma …)

Training draws the parts with :class:`~umsi.data.datasets.MultiMixSampler` (the default finetuning mix, Imp1k
+ 160 SALICON, draws exactly what :class:`~umsi.data.datamodules.Imp1kDataModule` draws). The class list is the
union of the datasets' categories by name, sorted, then ``unused_<i>`` outputs up to ``model.num_classes``, then
``natural_images`` (SALICON, MIT1003, OSIE) last, unless ``data.class_mapping`` gives it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from torch.utils.data import ConcatDataset, DataLoader

from umsi.data.datamodules import SaliencyDataModule
from umsi.data.datasets import MultiMixSampler
from umsi.data.layouts import NATURAL_IMAGES, DatasetLayoutError, SaliencyItem, read_class_mapping
from umsi.data.registry import Found, find_items, materialise
from umsi.data.splits import dataset_split
from umsi.errors import ConfigError

log = logging.getLogger(__name__)

ENTRY_KEYS = ("name", "layout", "root", "per_epoch", "weight", "category", "stages", "validate", "val_items")
_COMMON = set(inspect.signature(SaliencyDataModule.__init__).parameters) - {"self"}


def per_epoch_count(entry: Mapping[str, Any], available: int) -> int | None:
    """Items of one entry per training epoch: ``per_epoch``, or ``weight`` × its training items, or None (all).
    More than ``available`` draws all of them, with a warning. Raises :class:`ConfigError` for a bad value."""
    name, count, weight = entry["name"], entry.get("per_epoch"), entry.get("weight")
    if count is not None and weight is not None:
        raise ConfigError(f"data.datasets {name}: give per_epoch or weight, not both")
    if weight is not None:
        if not 0 < float(weight) <= 1:
            raise ConfigError(f"data.datasets {name}: weight={weight} must be in (0, 1] (a fraction of its items)")
        count = round(float(weight) * available)
    if count is None:
        return None
    if int(count) < 0:
        raise ConfigError(f"data.datasets {name}: per_epoch={count} must be 0 or more")
    if int(count) > available:
        log.warning(
            "%s: per_epoch=%s but only %d training items: every epoch draws all of them", name, count, available
        )
        return available
    return int(count)


class MixDataModule(SaliencyDataModule):
    """N registered datasets mixed per epoch (module docstring); ``stage``: the stage being trained (entries whose
    ``stages`` leave it out are dropped); ``derived_dir``: where maps built from fixations are written once;
    ``sigma``: their Gaussian σ in image pixels (an entry's own ``sigma`` wins).

    After ``setup``: ``val_datasets`` (names, in the order of the ``dataset`` tag of validation samples),
    ``split`` (every dataset's train and val lists, for split.json) and ``class_names``."""

    def __init__(
        self,
        datasets: Sequence[Mapping[str, Any]],
        stage: str | None = None,
        derived_dir: str | None = None,
        sigma: float = 19.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        entries = [dict(entry) for entry in datasets]
        for i, entry in enumerate(entries):
            if not entry.get("name") or not entry.get("root"):
                raise ConfigError(f"data.datasets[{i}] needs a name and a root (got {sorted(entry)})")
        self.entries = [e for e in entries if not e.get("stages") or stage is None or stage in e["stages"]]
        names = [entry["name"] for entry in self.entries]
        if len(set(names)) != len(names):
            raise ConfigError(f"data.datasets names must be unique within a stage, got {names} for {stage!r}")
        if not self.entries:
            raise ConfigError(f"data.datasets has no dataset for stage {stage!r} (check each entry's stages)")
        self.derived_dir, self.sigma = derived_dir, float(sigma)
        self.val_datasets: list[str] = []
        self.sampler: MultiMixSampler | None = None

    def _find(self) -> list[Found]:
        founds = []
        for entry in self.entries:
            options = {"seed": self.seed, **{k: v for k, v in entry.items() if k not in ENTRY_KEYS}}
            found = find_items(entry.get("layout") or entry["name"], entry["root"], options)
            found.raise_errors(key=f"data.datasets {entry['name']}")
            if entry.get("category"):
                for item in found.items:
                    item.category = str(entry["category"])
            found.items = [it for it in found.items if not self._skipped(it)]
            founds.append(found)
        return founds

    def _skipped(self, item: Any) -> bool:
        return any(p is not None and p in self.skip_files for p in (item.image, item.saliency, item.fixations))

    def _class_names(self, founds: Sequence[Found]) -> list[str]:
        if self.class_mapping:
            names = read_class_mapping(self.class_mapping)
        else:
            found_names = {it.category for found in founds for it in found.items if it.category is not None}
            names = sorted(found_names - {NATURAL_IMAGES})
            spare = (self.num_classes or 0) - len(names) - 1  # class-head outputs no dataset uses (UMSI++ had 2)
            names += [f"unused_{i}" for i in range(max(spare, 0))] + [NATURAL_IMAGES]
        if self.num_classes is not None and self.num_classes != len(names):
            raise DatasetLayoutError(
                f"model.num_classes={self.num_classes} but the mixed datasets have {len(names)} classes {names}; "
                f"set model.num_classes={len(names)}"
            )
        return names

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        founds = self._find()
        self.class_names = self._class_names(founds)
        train_parts, counts, val_parts = [], [], []
        for entry, found in zip(self.entries, founds, strict=True):
            name = entry["name"]
            sigma = float(entry.get("sigma", self.sigma))
            train = materialise(found, found.part("train"), self.class_names, self.derived_dir, sigma)
            val: list[SaliencyItem] = []
            if entry.get("validate", True):
                val = materialise(found, found.part("val"), self.class_names, self.derived_dir, sigma)
                if entry.get("val_items") is not None:
                    val = val[: int(entry["val_items"])]
            count = per_epoch_count(entry, len(train))
            source = found.source + ("" if count is None else f"; train: {count} items drawn per epoch")
            self.split[name] = dataset_split(found.root, source, train, val)
            if train:
                train_parts.append(self.dataset(train, True, f"{name}-train"))
                counts.append(count)
            if val:
                val_parts.append(self.dataset(val, False, f"{name}-val", tag=len(self.val_datasets)))
                self.val_datasets.append(name)
        if not train_parts or not val_parts:
            raise DatasetLayoutError(
                f"data=mix has {'no training' if not train_parts else 'no validation'} items in "
                f"{[e['name'] for e in self.entries]}: check the splits and each entry's validate"
            )
        self.train_set = ConcatDataset(train_parts)
        self.val_set = ConcatDataset(val_parts)
        self.sampler = MultiMixSampler([len(p) for p in train_parts], counts, self.seed)

    def train_dataloader(self) -> DataLoader:
        self.sampler.set_epoch(self._epoch())
        return self._loader(self.train_set, self.batch_size, sampler=self.sampler)


class RegistryDataModule(MixDataModule):
    """One registered dataset (``data.layout`` at ``data.root``; its options are the other keys): trains on its
    training split, validates on its validation split (``val/<layout>/*`` too). Unlabelled items (category None)
    get label -1: accuracy leaves them out, and the classification loss should be 0 (``loss.cls=0``)."""

    def __init__(self, layout: str, root: str, name: str | None = None, **kwargs: Any) -> None:
        common = {k: v for k, v in kwargs.items() if k in _COMMON or k in ("stage", "derived_dir", "sigma")}
        options = {k: v for k, v in kwargs.items() if k not in common}
        entry = {"name": name or layout, "layout": layout, "root": root, **options}
        super().__init__(datasets=[entry], **common)
        self.root = root
