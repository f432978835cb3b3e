"""Dataset layouts, preprocessing, fixation parsing, class lists, splits and the SALICON mixing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from umsi.data import Imp1kDataModule, MixingSampler, SaliconDataModule, SaliencyDataset
from umsi.data.layouts import (
    NATURAL_IMAGES,
    DatasetLayoutError,
    class_names,
    imp1k_items,
    read_class_mapping,
    read_salicon_fixations,
    salicon_items,
)
from umsi.data.synthetic import IMP1K_CLASSES
from umsi.data.transforms import (
    CAFFE_BGR_MEAN,
    LetterboxGeometry,
    SampleTransform,
    build_augmentation,
    denormalize_image,
    fixation_map,
    letterbox,
    normalize_image,
    seed_augmentation_worker,
)

COMMON = dict(input_size=(32, 40), batch_size=4, num_workers=0)


def test_salicon_items_pair_images_maps_and_fixations(synthetic_root: Path) -> None:
    items = salicon_items(synthetic_root / "salicon", "train", label=5)
    assert len(items) == 12
    for item in items:
        assert item.image.stem == item.saliency.stem == item.fixations.stem
        assert item.label == 5


def test_salicon_fixations_are_parsed_zero_based(synthetic_root: Path) -> None:
    item = salicon_items(synthetic_root / "salicon", "val", label=0)[0]
    points = read_salicon_fixations(item.fixations)
    assert points.ndim == 2 and points.shape[1] == 2 and len(points) >= 10  # 12 subjects × 3–8 fixations
    height, width = cv2.imread(str(item.image)).shape[:2]
    assert (points >= 0).all() and (points[:, 0] < width).all() and (points[:, 1] < height).all()
    raw = np.concatenate([np.asarray(g["fixations"]).reshape(-1, 2) for g in _gaze(item.fixations).flat])
    np.testing.assert_allclose(points, raw - 1)  # 1-based [x, y] in the file


def _gaze(path: Path) -> np.ndarray:
    import scipy.io

    return scipy.io.loadmat(str(path))["gaze"]


def test_missing_map_names_the_file(synthetic_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "salicon"
    shutil.copytree(synthetic_root / "salicon", root)
    victim = sorted((root / "maps" / "train").iterdir())[0]
    victim.unlink()
    with pytest.raises(DatasetLayoutError, match=victim.stem):
        salicon_items(root, "train", label=0)


def test_missing_root_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=r"does not exist.*data.root"):
        salicon_items(tmp_path / "nowhere", "train", label=0)


def test_class_names_from_folders_and_mapping_file(synthetic_root: Path, tmp_path: Path) -> None:
    names = class_names(synthetic_root / "imp1k", num_classes=6)
    assert names == [*IMP1K_CLASSES, NATURAL_IMAGES]
    mapping = tmp_path / "labels.txt"
    mapping.write_text("natural_images 0\nwebpages x 1\nadvertisements 2\n")
    assert read_class_mapping(mapping) == ["natural_images", "webpages", "advertisements"]
    with pytest.raises(DatasetLayoutError, match=r"model.num_classes=4"):
        class_names(synthetic_root / "imp1k", num_classes=4)


def test_imp1k_split_file_and_seeded_fallback(synthetic_root: Path, tmp_path: Path) -> None:
    root = synthetic_root / "imp1k"
    names = class_names(root)
    train, val = imp1k_items(root, names)
    split_train, split_val = json.loads((root / "train_test_split_imp1k.json").read_text())
    assert sorted(i.image.relative_to(root / "imgs").as_posix() for i in val) == sorted(split_val)
    assert len(train) == len(split_train) == 10
    for item in train + val:
        assert names[item.label] == item.image.parent.name
        assert item.saliency.stem == item.image.stem
    # without the file: a seeded hold-out of val_per_class per class, the same for the same seed
    a_train, a_val = imp1k_items(root, names, val_per_class=1, seed=3, split_file=None)
    _, b_val = imp1k_items(root, names, val_per_class=1, seed=3, split_file=None)
    assert len(a_val) == 5 and [i.image for i in a_val] == [i.image for i in b_val]
    assert {i.image for i in a_train}.isdisjoint({i.image for i in a_val})


def test_letterbox_follows_the_official_rule() -> None:
    assert LetterboxGeometry.fit((480, 640), (240, 320)) == LetterboxGeometry(240, 320, 0, 0)
    # relatively tall: rows fill, cols = ⌊W·240/H⌋ centred
    assert LetterboxGeometry.fit((300, 200), (240, 320)) == LetterboxGeometry(240, 160, 0, 80)
    # relatively wide: cols fill, rows = ⌊H·320/W⌋ centred
    assert LetterboxGeometry.fit((100, 400), (240, 320)) == LetterboxGeometry(80, 320, 80, 0)
    boxed = letterbox(np.full((300, 200, 3), 255, np.uint8), (240, 320))
    assert boxed.shape == (240, 320, 3)
    assert boxed[:, :80].max() == 0 and boxed[:, 240:].max() == 0 and boxed[:, 80:240].min() == 255


def test_fixation_map_lands_where_the_image_lands() -> None:
    # a 300×200 image letterboxed to 480×640 is resized to 480×320 at cols [160, 480); the official rule maps
    # (x=199, y=299) to (row round(299·480/300) = 478, col 160 + round(199·320/200) = 478)
    fmap = fixation_map(np.array([[0.0, 0.0], [199.0, 299.0]]), (300, 200), (480, 640))
    assert fmap.sum() == 2
    assert fmap[0, 160] == 1 and fmap[478, 478] == 1


def test_official_preprocessing_is_bgr_minus_caffe_means() -> None:
    image = np.zeros((2, 2, 3), np.uint8)
    image[..., 0] = 10  # B
    x = normalize_image(image, "official")
    assert x.shape == (3, 2, 2)
    assert x[0, 0, 0].item() == pytest.approx(10 - CAFFE_BGR_MEAN[0], abs=1e-4)
    assert x[2, 0, 0].item() == pytest.approx(-CAFFE_BGR_MEAN[2], abs=1e-4)
    np.testing.assert_array_equal(denormalize_image(x, "official")[..., 2], 10)  # back to RGB: blue last
    t = normalize_image(image, "timm")
    assert t[2, 0, 0].item() == pytest.approx((10 / 255 - 0.5) / 0.5, abs=1e-5)  # RGB order


def test_sample_transform_shapes_and_ranges() -> None:
    transform = SampleTransform((24, 32), 2.0, "official")
    sample = transform(
        np.zeros((60, 40, 3), np.uint8), np.full((60, 40), 255, np.uint8), np.array([[5.0, 5.0]], np.float32)
    )
    assert sample["image"].shape == (3, 24, 32)
    assert sample["saliency"].shape == sample["fixations"].shape == (1, 48, 64)
    assert sample["saliency"].max() == 1.0 and sample["fixations"].sum() == 1


def test_augmentation_moves_image_map_and_fixations_together() -> None:
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, :10] = 255  # bright band on the left
    saliency = np.zeros((40, 40), np.uint8)
    saliency[:, :10] = 255
    flip_only = build_augmentation(flip_p=1.0, affine_p=0.0, crop_pad_p=0.0)
    transform = SampleTransform((40, 40), 1.0, "timm", flip_only)
    sample = transform(image, saliency, np.array([[2.0, 20.0]], np.float32))
    assert sample["image"][0, :, -5:].mean() > 0.9  # band now on the right
    assert sample["saliency"][0, :, -5:].mean() > 0.9 and sample["saliency"][0, :, :20].max() == 0
    _, xs = torch.nonzero(sample["fixations"][0], as_tuple=True)
    assert xs.item() >= 35


def test_salicon_datamodule_batches(synthetic_root: Path) -> None:
    dm = SaliconDataModule(root=str(synthetic_root / "salicon"), classes_root=str(synthetic_root / "imp1k"), **COMMON)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 40)
    assert batch["saliency"].shape == batch["fixations"].shape == (4, 1, 64, 80)
    assert (batch["label"] == dm.class_names.index(NATURAL_IMAGES)).all()
    assert batch["fixations"].sum() > 0


def test_mixing_sampler_draws_n_distinct_pool_items_each_epoch() -> None:
    sampler = MixingSampler(base_size=10, pool_size=50, per_epoch=8, seed=1)
    draws = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        indices = list(sampler)
        assert len(indices) == len(sampler) == 18
        assert sorted(i for i in indices if i < 10) == list(range(10))
        pool = [i for i in indices if i >= 10]
        assert len(pool) == len(set(pool)) == 8
        draws.append(set(pool))
    assert draws[0] != draws[1] != draws[2]
    with pytest.raises(ValueError, match=r"data\.salicon_per_epoch"):
        MixingSampler(10, 5, 8)


def test_imp1k_datamodule_mixes_fresh_salicon_items_every_epoch(synthetic_root: Path) -> None:
    dm = Imp1kDataModule(
        root=str(synthetic_root / "imp1k"),
        salicon_root=str(synthetic_root / "salicon"),
        salicon_per_epoch=4,
        val_salicon_items=2,
        **COMMON,
    )
    dm.setup("fit")
    assert dm.class_names == [*IMP1K_CLASSES, NATURAL_IMAGES]
    natural = dm.class_names.index(NATURAL_IMAGES)
    loader = dm.train_dataloader()
    per_epoch = []
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        paths = [(p, int(label)) for batch in loader for p, label in zip(batch["path"], batch["label"], strict=True)]
        salicon = [p for p, label in paths if label == natural]
        assert len(paths) == 10 + 4 and len(salicon) == len(set(salicon)) == 4
        assert all("/salicon/" in p for p in salicon)
        per_epoch.append(set(salicon))
    assert per_epoch[0] != per_epoch[1]
    val_labels = [int(label) for batch in dm.val_dataloader() for label in batch["label"]]
    assert len(val_labels) == 10 + 2 and val_labels.count(natural) == 2


def _augmented_epoch(root: Path, seed: int, num_workers: int) -> list[torch.Tensor]:
    dm = SaliconDataModule(
        root=str(root / "salicon"), augment=True, seed=seed, **{**COMMON, "num_workers": num_workers, "batch_size": 3}
    )
    dm.setup("fit")
    # the DataLoader draws the shuffle and the worker seeds from torch's global RNG (seed_everything sets it)
    torch.manual_seed(seed)
    return [batch["saliency"] for batch in dm.train_dataloader()]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_augmentation_is_reproducible_for_a_seed(synthetic_root: Path, num_workers: int) -> None:
    first, again = _augmented_epoch(synthetic_root, 0, num_workers), _augmented_epoch(synthetic_root, 0, num_workers)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    other = _augmented_epoch(synthetic_root, 1, num_workers)
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_each_worker_draws_its_own_augmentations(synthetic_root: Path) -> None:
    item = salicon_items(synthetic_root / "salicon", "train", label=0)[0]
    flips = build_augmentation(flip_p=0.5, affine_p=0.0, crop_pad_p=0.0, seed=0)
    dataset = SaliencyDataset([item] * 32, SampleTransform((16, 20), 1.0, "official", flips))
    torch.manual_seed(0)
    loader = DataLoader(dataset, batch_size=1, num_workers=2, worker_init_fn=seed_augmentation_worker)
    maps = [batch["saliency"] for batch in loader]  # batches alternate between worker 0 and worker 1
    same = [torch.equal(maps[i], maps[i + 1]) for i in range(0, 32, 2)]
    assert not all(same)  # identical streams in both workers would give 16 identical pairs
