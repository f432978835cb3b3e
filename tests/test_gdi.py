"""GDI: layout parsing (splits, list files, missing files), the evaluation-only DataModule and its config."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hydra.utils import instantiate

from umsi.data import GdiDataModule
from umsi.data.layouts import NATURAL_IMAGES, NO_LABEL, DatasetLayoutError, gdi_items
from umsi.data.synthetic import IMP1K_CLASSES, generate
from umsi.training.runner import resolve_preprocessing

COMMON = dict(input_size=(32, 40), batch_size=4, num_workers=0)
GDI_ONLY = dict(salicon_train=0, salicon_val=0, imp1k_per_class=0, imp1k_val_per_class=0, progress=False)


@pytest.fixture(scope="module")
def gdi_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic GDI tree: 5 train, 3 val."""
    return generate(tmp_path_factory.mktemp("gdi") / "syn", seed=0, gdi_train=5, gdi_val=3, **GDI_ONLY) / "gdi"


@pytest.fixture
def gdi_copy(gdi_root: Path, tmp_path: Path) -> Path:
    """A copy of the tree that a test may damage."""
    return Path(shutil.copytree(gdi_root, tmp_path / "gdi"))


def _listed(root: Path, list_file: str) -> list[str]:
    return (root / list_file).read_text().split()


def test_splits_pair_images_with_maps(gdi_root: Path) -> None:
    train, val, every = gdi_items(gdi_root, "train"), gdi_items(gdi_root, "val"), gdi_items(gdi_root)
    assert (len(train), len(val)) == (5, 3)
    assert every == train + val
    assert [i.image.stem for i in train] == _listed(gdi_root, "train.txt")
    assert [i.image.stem for i in val] == _listed(gdi_root, "valid.txt")
    for split, items in (("train", train), ("val", val)):
        for item in items:
            assert item.image.parent == gdi_root / f"gd_{split}" and item.image.suffix == ".jpg"
            assert item.saliency == gdi_root / f"gd_imp_{split}" / f"{item.image.stem}.png"
            assert item.fixations is None and item.label == NO_LABEL == -1


def test_list_file_selects_and_orders_the_items(gdi_copy: Path) -> None:
    names = _listed(gdi_copy, "train.txt")
    dropped = names[1]
    kept = [names[3], names[0], names[2], names[4]]
    (gdi_copy / "train.txt").write_text("\n".join(kept) + "\n\n")  # blank lines are ignored
    items = gdi_items(gdi_copy, "train")
    assert [i.image.stem for i in items] == kept
    assert (gdi_copy / "gd_train" / f"{dropped}.jpg").is_file()  # on disk, but not listed: excluded
    assert len(gdi_items(gdi_copy, "all")) == 4 + 3
    # names with an image suffix are accepted too
    (gdi_copy / "train.txt").write_text(f"{kept[0]}.jpg\n")
    assert [i.image.stem for i in gdi_items(gdi_copy, "train")] == [kept[0]]


def test_without_list_files_every_image_is_used(gdi_copy: Path) -> None:
    names = _listed(gdi_copy, "train.txt")
    (gdi_copy / "train.txt").unlink()
    (gdi_copy / "valid.txt").unlink()
    items = gdi_items(gdi_copy, "train")
    assert [i.image.stem for i in items] == sorted(names)
    assert len(gdi_items(gdi_copy)) == 8


def test_listed_image_without_map_names_it_and_the_list(gdi_copy: Path) -> None:
    victim = _listed(gdi_copy, "valid.txt")[1]
    (gdi_copy / "gd_imp_val" / f"{victim}.png").unlink()
    with pytest.raises(DatasetLayoutError, match=rf"{victim}.*valid\.txt.*has no map.*gd_imp_val/{victim}\.png"):
        gdi_items(gdi_copy, "val")
    with pytest.raises(DatasetLayoutError, match=victim):
        gdi_items(gdi_copy, "all")
    assert len(gdi_items(gdi_copy, "train")) == 5


def test_listed_but_missing_image_names_it_and_the_list(gdi_copy: Path) -> None:
    victim = _listed(gdi_copy, "train.txt")[2]
    (gdi_copy / "gd_train" / f"{victim}.jpg").unlink()
    with pytest.raises(DatasetLayoutError, match=rf"train\.txt lists 1 names .*{victim}.*remove the names"):
        gdi_items(gdi_copy, "train")


def test_unlisted_image_without_map_is_an_error(gdi_copy: Path) -> None:
    (gdi_copy / "train.txt").unlink()
    victim = sorted((gdi_copy / "gd_imp_train").iterdir())[0]
    victim.unlink()
    with pytest.raises(DatasetLayoutError, match=rf"GDI image .*{victim.stem}\.jpg has no map"):
        gdi_items(gdi_copy, "train")


def test_missing_folders_and_bad_split_say_what_to_do(gdi_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=r"GDI train images folder .*gd_train does not exist.*data\.root"):
        gdi_items(tmp_path / "nowhere")
    shutil.rmtree(gdi_copy / "gd_imp_val")
    with pytest.raises(DatasetLayoutError, match=r"gd_imp_val does not exist.*data\.gdi_root"):
        gdi_items(gdi_copy, "val", key="data.gdi_root")
    assert len(gdi_items(gdi_copy, "train")) == 5
    with pytest.raises(DatasetLayoutError, match=r"one of train, val, all.*'test'.*data\.split"):
        gdi_items(gdi_copy, "test")


def test_datamodule_serves_unlabelled_val_batches(gdi_root: Path, synthetic_root: Path) -> None:
    dm = GdiDataModule(root=str(gdi_root), classes_root=str(synthetic_root / "imp1k"), **COMMON)
    dm.setup("fit")
    assert dm.class_names == [*IMP1K_CLASSES, NATURAL_IMAGES]
    batches = list(dm.val_dataloader())
    assert [len(b["label"]) for b in batches] == [4, 4]
    batch = batches[0]
    assert batch["image"].shape == (4, 3, 32, 40)
    assert batch["saliency"].shape == batch["fixations"].shape == (4, 1, 64, 80)
    assert all((b["label"] == -1).all() and b["fixations"].sum() == 0 for b in batches)
    peaks = batch["saliency"].amax(dim=(1, 2, 3))
    assert (peaks > 0.9).all() and (peaks <= 1.0).all() and batch["saliency"].min() >= 0
    assert dm.test_set is dm.val_set
    assert [p for b in dm.test_dataloader() for p in b["path"]] == [p for b in batches for p in b["path"]]


def test_datamodule_split_and_placeholder_classes(gdi_root: Path) -> None:
    dm = GdiDataModule(root=str(gdi_root), split="val", **COMMON)
    dm.setup()
    assert len(dm.val_set) == 3
    assert dm.class_names == [f"design_{i}" for i in range(5)] + [NATURAL_IMAGES]


def test_training_on_gdi_is_refused(gdi_root: Path) -> None:
    dm = GdiDataModule(root=str(gdi_root), **COMMON)
    dm.setup("fit")
    with pytest.raises(RuntimeError, match=r"evaluation-only.*data=gdi"):
        dm.train_dataloader()


def test_data_gdi_config_builds_the_module(hydra_conf, synthetic_root: Path, tmp_path: Path) -> None:
    paths = [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path}/out", f"paths.datasets_dir={synthetic_root}"]
    cfg = hydra_conf([*paths, "data=gdi"])
    assert cfg.data._target_ == "umsi.data.GdiDataModule" and cfg.data.split == "all"
    assert cfg.data.root == f"{synthetic_root}/gdi"
    dm = instantiate(resolve_preprocessing(cfg).data, _convert_="all")  # data.preprocessing=auto, as training does
    assert isinstance(dm, GdiDataModule)
    dm.setup("validate")
    listed = _listed(synthetic_root / "gdi", "train.txt") + _listed(synthetic_root / "gdi", "valid.txt")
    assert [Path(item.image).stem for item in dm.val_set.items] == listed
    assert len(dm.class_names) == cfg.model.num_classes
