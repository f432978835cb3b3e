"""N-way mixing (data=mix): the default finetuning mix draws the same items per epoch as the Imp1k + SALICON
datamodule did before the registry, per-dataset validation, split.json and the class union."""

from __future__ import annotations

from pathlib import Path

from umsi.data.datamodules import Imp1kDataModule
from umsi.data.datasets import MixingSampler

# MixingSampler(6 base, 10 pool, 3 per epoch) indices for epochs 0-2, recorded from the code before data=mix
# existed (commit 882d74d): the default finetuning mix must keep drawing exactly these.
RECORDED = {
    0: [[5, 1, 11, 3, 4, 15, 12, 2, 0], [2, 0, 4, 1, 15, 10, 14, 3, 5], [13, 6, 2, 5, 1, 0, 4, 3, 8]],
    42: [[2, 6, 3, 1, 5, 12, 0, 15, 4], [5, 10, 13, 0, 11, 1, 3, 2, 4], [3, 4, 14, 5, 1, 8, 2, 0, 7]],
}


def _epochs(sampler, epochs: int = 3) -> list[list[int]]:
    out = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        out.append(list(sampler))
    return out


def test_imp1k_plus_salicon_sampler_draws_the_recorded_items() -> None:
    for seed, expected in RECORDED.items():
        assert _epochs(MixingSampler(6, 10, 3, seed)) == expected


def _imp1k_paths(root: Path, seed: int) -> list[list[str]]:
    dm = Imp1kDataModule(
        root=str(root / "imp1k"),
        salicon_root=str(root / "salicon"),
        salicon_per_epoch=5,
        num_classes=6,
        seed=seed,
        num_workers=0,
    )
    dm.setup("fit")
    images = [it.image for ds in dm.train_set.datasets for it in ds.items]
    return [[str(images[i]) for i in epoch] for epoch in _epochs(dm.sampler)]


def test_default_finetuning_datamodule_mixes_salicon_per_epoch(synthetic_root: Path) -> None:
    epochs = _imp1k_paths(synthetic_root, seed=3)
    salicon = [[p for p in e if "/salicon/" in p] for e in epochs]
    assert all(len(s) == 5 for s in salicon) and salicon[0] != salicon[1]
    assert all(sum("/imp1k/" in p for p in e) == len(epochs[0]) - 5 for e in epochs)
