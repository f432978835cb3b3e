"""Every config composes, the stage recipes are right, and command-line overrides apply."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from umsi.paths import CONFIG_DIR

GROUPS = sorted(p.name for p in Path(CONFIG_DIR).iterdir() if p.is_dir() and p.name != "hydra")
BASE = ["paths.root_dir=/tmp/umsi-root", "paths.output_dir=/tmp/umsi-root/out"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml") if not p.stem.startswith("_"))


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in _options(g)])
def test_every_config_option_composes_and_resolves(hydra_conf, group: str, option: str) -> None:
    cfg = hydra_conf([*BASE, f"{group}={option}"])
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves


def test_config_groups_exist() -> None:
    required = {"data", "model", "loss", "optimizer", "scheduler", "trainer", "callbacks", "logger", "paths"}
    assert required | {"stage", "experiment"} <= set(GROUPS)


def test_stage_recipes(hydra_conf) -> None:
    pretrain = hydra_conf([*BASE, "stage=pretrain"])
    finetune = hydra_conf([*BASE, "stage=finetune"])
    assert pretrain.data._target_ == "umsi.data.SaliconDataModule"
    assert finetune.data._target_ == "umsi.data.Imp1kDataModule"
    assert (pretrain.loss.kl, pretrain.loss.cc, pretrain.loss.cls) == (10.0, -3.0, 0.0)
    assert (finetune.loss.kl, finetune.loss.cc, finetune.loss.cls) == (10.0, -3.0, 5.0)
    for cfg in (pretrain, finetune):
        assert cfg.optimizer.lr == 1e-4 and cfg.data.batch_size == 4
        assert (cfg.scheduler.drop, cfg.scheduler.epochs_drop) == (0.1, 3)
    assert finetune.data.salicon_per_epoch == 160


def test_reproduce_experiment_is_full_size_on_real_data(hydra_conf) -> None:
    cfg = hydra_conf([*BASE, "stage=finetune", "experiment=reproduce"])
    assert list(cfg.data.input_size) == [240, 320]
    assert cfg.trainer.max_epochs == 15
    assert cfg.data.root == "/tmp/umsi-root/data/imp1k"
    demo = hydra_conf([*BASE, "stage=finetune"])
    assert demo.data.root == "/tmp/umsi-root/data/synthetic/imp1k"


def test_command_line_overrides_apply(hydra_conf) -> None:
    cfg = hydra_conf([*BASE, "stage=pretrain", "loss.kl=5", "data.batch_size=2", "trainer.max_epochs=1"])
    assert (cfg.loss.kl, cfg.data.batch_size, cfg.trainer.max_epochs) == (5, 2, 1)
    cfg = hydra_conf([*BASE, "data.root=/elsewhere/salicon", "stage=pretrain", "model=xception65_os16"])
    assert cfg.data.root == "/elsewhere/salicon"
    assert (cfg.model.encoder, cfg.model.output_stride) == ("xception65", 16)


def test_pipeline_applies_overrides_only_where_the_key_exists(hydra_conf) -> None:
    from umsi.training.runner import compose_stage

    hydra_conf(BASE)  # initialised Hydra for the re-composition
    overrides = [*BASE, "stage=pipeline", "data.salicon_per_epoch=7", "loss.kl=4"]
    pretrain = compose_stage("pretrain", overrides, [])
    finetune = compose_stage("finetune", overrides, ["trainer.max_epochs=2"])
    assert "salicon_per_epoch" not in pretrain.data and pretrain.loss.kl == 4
    assert finetune.data.salicon_per_epoch == 7 and finetune.loss.kl == 4 and finetune.trainer.max_epochs == 2


def test_loss_and_optimizer_instantiate(hydra_conf) -> None:
    cfg = hydra_conf([*BASE, "stage=finetune", "loss=official"])
    loss = instantiate(cfg.loss)
    assert loss.weights == {"kl": 10.0, "cc": -3.0, "nss": -5.0, "mse": 0.1, "cls": 5.0}
