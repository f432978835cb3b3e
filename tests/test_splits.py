"""One split per run, recorded: a training stage writes the images it trained and validated on (split.json), and
umsi-eval scores exactly that run's validation list, never a silently re-drawn one."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from hydra import compose

from umsi.data.layouts import IMP1K_SPLIT_FILE
from umsi.evaluation.runner import evaluate, split_lines
from umsi.runs import SPLIT_FILE
from umsi.training.runner import train_stage


def _per_image(report: Path) -> list[dict[str, str]]:
    with open(report / "per_image.csv") as f:
        return list(csv.DictReader(f))


def test_evaluation_scores_the_runs_own_validation_list(
    tiny_cfg, synthetic_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An Imp1k tree without its split file, trained with seed 1 and evaluated with seed 0: umsi-eval scores exactly
    the run's held-out images, none it trained on. Without the run's recorded split it says that it draws its own
    hold-out and names the seed."""
    imp1k = shutil.copytree(synthetic_root / "imp1k", tmp_path / "imp1k")
    (imp1k / IMP1K_SPLIT_FILE).unlink()
    cfg, _ = tiny_cfg(
        "stage=finetune",
        "seed=1",
        f"data.root={imp1k}",
        "data.val_per_class=2",
        "data.salicon_per_epoch=4",
        "data.val_salicon_items=2",
    )
    train_stage(cfg)  # the stage alone: its final evaluation is not needed here
    split_path = tmp_path / "run" / SPLIT_FILE
    split = json.loads(split_path.read_text())
    assert split["imp1k"]["source"] == f"no {IMP1K_SPLIT_FILE}: 2 images per class held out with seed 1"
    assert len(split["salicon"]["train"]) == 12 and len(split["salicon"]["val"]) == 2
    trained = {str(imp1k / p) for p in split["imp1k"]["train"]}
    held_out = [str(imp1k / p) for p in split["imp1k"]["val"]]
    assert len(held_out) == 10 and len(trained) == 10 and not trained & set(held_out)

    eval_overrides = [
        f"checkpoints=[{tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}]",
        "names=[ours]",
        f"datasets.imp1k={imp1k}",
        "imp1k.val_per_class=2",
        "datasets.salicon=null",
        "datasets.gdi=null",
        "paths.root_dir=/tmp/x",
        "seed=0",
        "examples=0",
        "progress=false",
        "logger.wandb=false",
    ]
    results = evaluate(compose(config_name="eval", overrides=eval_overrides), tmp_path / "eval")
    scored = [r["path"] for r in _per_image(tmp_path / "eval") if r["model"] == "ours"]
    assert scored == held_out  # exactly the run's list, in its order: no image it trained on
    assert split_lines(results) == [
        f"imp1k for ours: {split_path} (the validation list recorded by the model's training run)"
    ]

    split_path.unlink()  # a run from before splits were recorded
    with caplog.at_level("WARNING"):
        results = evaluate(compose(config_name="eval", overrides=eval_overrides), tmp_path / "eval2")
    (line,) = split_lines(results)
    assert line.startswith(f"imp1k for ours: no split recorded with the checkpoint and no {IMP1K_SPLIT_FILE} in")
    assert "2 images per class held out with seed 0" in line
    assert any("held out with seed 0" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    redrawn = {r["path"] for r in _per_image(tmp_path / "eval2") if r["model"] == "ours"}
    assert redrawn & trained  # what the warning is about: another seed's hold-out includes training images


def test_a_split_recorded_for_another_tree_is_not_used(synthetic_root: Path, tmp_path: Path) -> None:
    from hydra import initialize_config_dir

    from umsi.data.layouts import DatasetLayoutError, class_names
    from umsi.evaluation.runner import dataset_items
    from umsi.paths import CONFIG_DIR

    imp1k = synthetic_root / "imp1k"
    names = class_names(imp1k)
    present = sorted(p.relative_to(imp1k).as_posix() for p in (imp1k / "imgs").rglob("*.jpg"))[:2]
    split_path = tmp_path / SPLIT_FILE
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="eval", overrides=["paths.root_dir=/tmp/x"])
    split_path.write_text(json.dumps({"imp1k": {"root": "/other", "source": "", "train": ["imgs/a/x.png"], "val": []}}))
    items, source = dataset_items("imp1k", imp1k, names, cfg, split_path)
    assert source == f"{imp1k / IMP1K_SPLIT_FILE} ({split_path} is for another imp1k tree (/other))"
    assert len(items) == 10  # the tree's own split file
    split_path.write_text(json.dumps({"imp1k": {"root": str(imp1k), "source": "", "train": present, "val": ["x.png"]}}))
    with pytest.raises(DatasetLayoutError, match=r"1 of the 1 imp1k images the run validated on \(the ones"):
        dataset_items("imp1k", imp1k, names, cfg, split_path)


def test_an_evaluation_only_tree_without_the_training_images_is_scored(synthetic_root: Path, tmp_path: Path) -> None:
    """A machine holding only the evaluation data: the run's split lists training images that are absent there.
    They are never scored, so the recorded validation list is used, and the overlap check finds none of them."""
    from hydra import initialize_config_dir

    from umsi.data.layouts import class_names
    from umsi.evaluation.runner import dataset_items
    from umsi.paths import CONFIG_DIR

    imp1k = shutil.copytree(synthetic_root / "imp1k", tmp_path / "imp1k")
    names = class_names(imp1k)
    images = sorted(p.relative_to(imp1k).as_posix() for p in (imp1k / "imgs").rglob("*.jpg"))
    train, val = images[:-4], images[-4:]
    for name in train:  # the evaluation machine has only the validation images
        (imp1k / name).unlink()
    split_path = tmp_path / SPLIT_FILE
    split_path.write_text(json.dumps({"imp1k": {"root": str(imp1k), "source": "", "train": train, "val": val}}))
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="eval", overrides=["paths.root_dir=/tmp/x"])
    items, source = dataset_items("imp1k", imp1k, names, cfg, split_path)
    assert [item.image for item in items] == [imp1k / name for name in val]
    assert source == f"{split_path} (the validation list recorded by the model's training run)"
