"""Torch datasets over paired saliency items, and the epoch-wise SALICON mixing sampler."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from umsi.data.fixations import read_fixations
from umsi.data.layouts import SaliencyItem
from umsi.data.readers import read_image_bgr, read_map
from umsi.data.transforms import SampleTransform, fixation_map, normalize_image
from umsi.errors import ConfigError, DataFileError
from umsi.utils.once import warn_once

if TYPE_CHECKING:
    from umsi.data.cache import SaliencyCache

log = logging.getLogger(__name__)


class SaliencyDataset(Dataset):
    """Items → dict(image (3, H, W), saliency (1, sH, sW), fixations (1, sH, sW), label (), index (),
    path str, and dataset () when ``tag`` is set). Fixations outside the image are dropped. Items without a
    fixation file, or without a fixation inside the image, get an all-zero fixation map: they train on their map
    (the NSS loss term is 0) and are left out of the validation NSS.

    With a ``cache`` (:mod:`umsi.data.cache`) the letterboxed uint8 arrays come from its memory map instead of
    being decoded; the tensors are the same. A cache holds letterboxed arrays, so it excludes augmentation.
    """

    def __init__(
        self,
        items: Sequence[SaliencyItem],
        transform: SampleTransform,
        cache: SaliencyCache | None = None,
        tag: int | None = None,
    ) -> None:
        self.items = list(items)
        self.transform = transform
        self.cache = cache
        self.tag = tag  # a mix's dataset index, given to every sample as ``dataset`` (per-dataset validation)
        if cache is not None:
            if transform.augmentation is not None:
                raise ValueError("a decode-once cache holds letterboxed arrays and cannot be augmented")
            if (cache.input_size, cache.output_size) != (transform.input_size, transform.output_size):
                raise ValueError(
                    f"cache sizes {cache.input_size}/{cache.output_size} differ from the transform's "
                    f"{transform.input_size}/{transform.output_size}"
                )
            if len(cache) != len(self.items):
                raise ValueError(f"cache has {len(cache)} items, the dataset {len(self.items)}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        if self.cache is not None:
            sample = self._cached_sample(index)
        else:
            try:
                image = read_image_bgr(item.image)
                fixations = (
                    read_fixations(item.fixations, image_hw=image.shape[:2])
                    if item.fixations
                    else np.zeros((0, 2), np.float32)
                )
                saliency = read_map(item.saliency)
            except DataFileError as err:
                raise DataFileError(
                    f"{err}. Find every such file with umsi-data-check, or train with data.skip_invalid=true"
                ) from None
            sample = self.transform(image, saliency, fixations)
        sample.update(label=torch.tensor(item.label), index=torch.tensor(index), path=str(item.image))
        if self.tag is not None:
            sample["dataset"] = torch.tensor(self.tag)
        return sample

    def _cached_sample(self, index: int) -> dict[str, Any]:
        """The last, cheap steps of :class:`SampleTransform` (no augmentation) on the cached letterboxed arrays."""
        image, saliency, points, source_hw = self.cache[index]
        output_size = self.transform.output_size
        saliency_out = saliency.astype(np.float32) / 255.0
        return {
            "image": normalize_image(image, self.transform.preprocessing),
            "saliency": torch.from_numpy(saliency_out)[None],
            "fixations": torch.from_numpy(fixation_map(points, source_hw, output_size))[None],
        }


def salicon_mix(requested: int, available: int, root: str | Path) -> int:
    """How many SALICON training images finetuning mixes into every epoch: ``data.salicon_per_epoch``, or all
    ``available`` ones, with a warning, when ``root`` has fewer (the paper drew 160 of SALICON's 10,000).
    Raises :class:`~umsi.errors.ConfigError` for a negative count."""
    if requested < 0:
        raise ConfigError(f"data.salicon_per_epoch={requested} must be 0 or more (the paper mixes in 160)")
    if requested > available:
        warn_once(
            log,
            "data.salicon_per_epoch=%d, but %s has only %d SALICON training images: finetuning draws all %d in "
            "every epoch (lower data.salicon_per_epoch to silence this, or add images)",
            requested,
            root,
            available,
            available,
        )
        return available
    return requested


class MultiMixSampler(Sampler[int]):
    """Indices into ``ConcatDataset(parts)`` for N-way mixing (``data=mix``): every item of a part whose
    ``per_epoch`` is None, and ``per_epoch[k]`` distinct items of part ``k`` drawn afresh each epoch, shuffled
    together. One generator seeded by (``seed``, epoch) draws the parts in order, another by (``seed``, epoch, 1)
    shuffles: with parts [Imp1k train (all), SALICON train (160)] it is the paper's finetuning mix, index for index
    (:class:`MixingSampler`). Lightning calls :meth:`set_epoch` at the start of every training epoch.
    """

    def __init__(
        self, sizes: Sequence[int], per_epoch: Sequence[int | None], seed: int = 0, shuffle: bool = True
    ) -> None:
        if len(sizes) != len(per_epoch):
            raise ValueError(f"{len(sizes)} part sizes but {len(per_epoch)} per-epoch counts")
        for size, count in zip(sizes, per_epoch, strict=True):
            if count is not None and not 0 <= count <= size:
                raise ValueError(f"{count} items per epoch from a part of {size} items (0 to {size} allowed)")
        self.sizes, self.counts = [int(s) for s in sizes], [None if c is None else int(c) for c in per_epoch]
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch])

    def drawn(self) -> list[np.ndarray]:
        """Per part, the items (0-based within the part) of the current epoch, before shuffling."""
        rng, out = self._rng(), []
        for size, count in zip(self.sizes, self.counts, strict=True):
            out.append(np.arange(size) if count is None else rng.choice(size, size=count, replace=False))
        return out

    def __iter__(self) -> Iterator[int]:
        offsets = np.cumsum([0, *self.sizes[:-1]])
        indices = np.concatenate([offset + part for offset, part in zip(offsets, self.drawn(), strict=True)])
        if self.shuffle:
            indices = np.random.default_rng([self.seed, self.epoch, 1]).permutation(indices)
        return iter(indices.tolist())

    def __len__(self) -> int:
        return sum(size if count is None else count for size, count in zip(self.sizes, self.counts, strict=True))


class MixingSampler(MultiMixSampler):
    """Indices into ``ConcatDataset([base, pool])``: every base item plus ``per_epoch`` distinct pool items,
    drawn afresh each epoch (seeded by ``seed`` and the epoch), shuffled together.

    This is how Imp1k finetuning keeps seeing natural images: base = Imp1k train, pool = SALICON train; the
    two-part case of :class:`MultiMixSampler`.
    """

    def __init__(self, base_size: int, pool_size: int, per_epoch: int, seed: int = 0, shuffle: bool = True):
        if per_epoch > pool_size:
            raise ValueError(
                f"data.salicon_per_epoch={per_epoch} exceeds the {pool_size} SALICON training images available"
            )
        super().__init__([base_size, pool_size], [None, per_epoch], seed, shuffle)
        self.base_size, self.pool_size, self.per_epoch = base_size, pool_size, per_epoch

    @classmethod
    def shuffling(cls, size: int, seed: int = 0) -> MixingSampler:
        """A plain shuffle of ``size`` items, fresh every epoch, seeded by ``seed`` and the epoch only."""
        return cls(size, pool_size=0, per_epoch=0, seed=seed)

    def pool_indices(self) -> np.ndarray:
        """The pool items (0-based within the pool) drawn for the current epoch."""
        return self.drawn()[1]
