"""The optional decode-once cache (data.cache_dir): same tensors as decoding, reuse, invalidation, crash safety."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from umsi.data import SaliconDataModule, SaliencyDataset, SaliencyItem
from umsi.data import cache as cache_module
from umsi.data.cache import cache_stem, ensure_cache, expected_manifest, load_cache
from umsi.data.layouts import class_names, imp1k_items, salicon_items
from umsi.data.transforms import SampleTransform
from umsi.training.runner import run

INPUT, SCALE = (32, 40), 2.0
OUTPUT = (64, 80)


def _transform(preprocessing: str = "official") -> SampleTransform:
    return SampleTransform(INPUT, SCALE, preprocessing)


def _cached(items: list[SaliencyItem], cache_dir: Path, name: str = "split", **kwargs) -> SaliencyDataset:
    cache = ensure_cache(cache_dir, name, items, INPUT, OUTPUT, progress=False)
    return SaliencyDataset(items, _transform(**kwargs), cache)


def _assert_same_samples(cached: SaliencyDataset, plain: SaliencyDataset) -> None:
    assert len(cached) == len(plain)
    for index in range(len(plain)):
        a, b = cached[index], plain[index]
        assert a.keys() == b.keys() and a["path"] == b["path"]
        for key in ("image", "saliency", "fixations", "label", "index"):
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), (key, index)


@pytest.fixture
def salicon_copy(synthetic_root: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny SALICON tree, free to modify."""
    return Path(shutil.copytree(synthetic_root / "salicon", tmp_path / "salicon"))


@pytest.mark.parametrize("preprocessing", ["official", "timm"])
def test_cached_samples_equal_decoded_ones(synthetic_root: Path, salicon_copy: Path, preprocessing: str) -> None:
    salicon = salicon_items(salicon_copy, "train", label=5)
    # a map smaller than its image is resized to it first, as the transform does
    small = salicon[0].saliency
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(small), cv2.IMREAD_GRAYSCALE), (31, 23)))
    names = class_names(synthetic_root / "imp1k", num_classes=6)
    train, val = imp1k_items(synthetic_root / "imp1k", names, 2, 0, "train_test_split_imp1k.json")
    items = salicon + train + val  # fixations, no fixations, JPEG and PNG, varied aspect ratios
    cached = _cached(items, salicon_copy.parent / "cache", preprocessing=preprocessing)
    _assert_same_samples(cached, SaliencyDataset(items, _transform(preprocessing)))
    assert cached[0]["fixations"].sum() > 0


def test_cache_is_reused_when_nothing_changed(salicon_copy: Path, tmp_path: Path) -> None:
    items = salicon_items(salicon_copy, "val", label=0)
    first = ensure_cache(tmp_path / "cache", "val", items, INPUT, OUTPUT, progress=False)
    manifest = first.stem.with_name(first.stem.name + ".json")
    stamp = manifest.stat().st_mtime_ns, first.stem.with_name(first.stem.name + ".npy").stat().st_ino
    again = ensure_cache(tmp_path / "cache", "val", items, INPUT, OUTPUT, progress=False)
    assert first.built and not again.built and again.stem == first.stem
    assert (manifest.stat().st_mtime_ns, again.stem.with_name(again.stem.name + ".npy").stat().st_ino) == stamp
    # another size is another cache, which leaves this one valid
    other = ensure_cache(tmp_path / "cache", "val", items, (16, 20), (32, 40), progress=False)
    assert other.built and other.stem != first.stem
    assert not ensure_cache(tmp_path / "cache", "val", items, INPUT, OUTPUT, progress=False).built


def test_touching_or_replacing_a_source_rebuilds(salicon_copy: Path, tmp_path: Path) -> None:
    items = salicon_items(salicon_copy, "val", label=0)
    assert ensure_cache(tmp_path / "cache", "val", items, INPUT, OUTPUT, progress=False).built
    stat = items[1].saliency.stat()
    os.utime(items[1].saliency, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert ensure_cache(tmp_path / "cache", "val", items, INPUT, OUTPUT, progress=False).built
    # same name and time, new content: the size tells
    image = cv2.imread(str(items[2].image))
    stat = items[2].image.stat()
    cv2.imwrite(str(items[2].image), 255 - image, [cv2.IMWRITE_JPEG_QUALITY, 50])
    os.utime(items[2].image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert items[2].image.stat().st_size != stat.st_size
    cached = _cached(items, tmp_path / "cache", "val")
    assert cached.cache.built
    _assert_same_samples(cached, SaliencyDataset(items, _transform()))


def test_interrupted_build_leaves_no_valid_cache(
    salicon_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = salicon_items(salicon_copy, "train", label=0)
    cache_dir = tmp_path / "cache"
    ensure_cache(cache_dir, "train", items, INPUT, OUTPUT, progress=False)
    os.utime(items[0].image)  # the next call rebuilds
    decoded = []

    def failing_read(path: Path) -> np.ndarray:
        if len(decoded) == 5:
            raise KeyboardInterrupt  # as when the user stops the build
        decoded.append(path)
        return cv2.imread(str(path))

    monkeypatch.setattr(cache_module, "read_image_bgr", failing_read)
    with pytest.raises(KeyboardInterrupt):
        ensure_cache(cache_dir, "train", items, INPUT, OUTPUT, progress=False)
    stem = cache_stem(cache_dir, "train", items, INPUT)
    assert load_cache(stem, expected_manifest("train", items, INPUT, OUTPUT)) is None
    assert not stem.with_name(stem.name + ".json").exists()
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".")]  # no temporary files left behind
    monkeypatch.undo()
    assert ensure_cache(cache_dir, "train", items, INPUT, OUTPUT, progress=False).built


def test_truncated_or_edited_cache_files_are_rebuilt(salicon_copy: Path, tmp_path: Path) -> None:
    items = salicon_items(salicon_copy, "val", label=0)
    cache = ensure_cache(tmp_path / "cache", "val", items, INPUT, OUTPUT, progress=False)
    records = cache.stem.with_name(cache.stem.name + ".npy")
    records.write_bytes(records.read_bytes()[:-100])
    assert ensure_cache(tmp_path / "cache", "val", items, INPUT, OUTPUT, progress=False).built
    manifest = cache.stem.with_name(cache.stem.name + ".json")
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "output_size": [1, 1]}))
    assert ensure_cache(tmp_path / "cache", "val", items, INPUT, OUTPUT, progress=False).built


def test_cached_dataset_pickles_without_its_arrays(salicon_copy: Path, tmp_path: Path) -> None:
    items = salicon_items(salicon_copy, "train", label=0)
    dataset = _cached(items, tmp_path / "cache")
    dataset[0]  # opens the memory maps
    clone = pickle.loads(pickle.dumps(dataset))
    assert len(pickle.dumps(dataset)) < dataset.cache.records.nbytes / 4
    _assert_same_samples(clone, dataset)


def test_datamodule_cache_option(synthetic_root: Path, tmp_path: Path) -> None:
    common = dict(
        root=str(synthetic_root / "salicon"),
        classes_root=str(synthetic_root / "imp1k"),
        input_size=INPUT,
        batch_size=4,
        num_workers=0,
    )
    with pytest.raises(ValueError, match=r"data\.cache_dir.*data\.augment=false or data\.cache_dir=null"):
        SaliconDataModule(**common, augment=True, cache_dir=str(tmp_path / "cache"))
    dm = SaliconDataModule(**common, cache_dir=str(tmp_path / "cache"))
    dm.setup("fit")
    assert dm.train_set.cache.built and dm.val_set.cache.built
    plain = SaliconDataModule(**common)
    plain.setup("fit")
    _assert_same_samples(dm.val_set, plain.val_set)
    again = SaliconDataModule(**common, cache_dir=str(tmp_path / "cache"))
    again.setup("fit")
    assert not again.train_set.cache.built and not again.val_set.cache.built


def test_pretraining_runs_from_the_cache(tiny_cfg, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cfg, overrides = tiny_cfg("stage=pretrain", f"data.cache_dir={cache_dir}")
    summary = run(cfg, overrides)
    assert np.isfinite(summary["model"]["cc"])
    manifests = sorted(p.name.split("-")[1] for p in cache_dir.glob("*.json"))
    assert manifests == ["train", "val"]
