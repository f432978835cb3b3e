"""Sweeps (grid configs, Optuna), resuming a stopped run, W&B grouping, and the value returned to sweepers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import tiny_overrides
from umsi.paths import CONFIG_DIR
from umsi.training.runner import _wandb_overrides, run, summary_value


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, "-m", "umsi.cli.train", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


def _sweep_overrides(synthetic_root: Path, tmp_path: Path) -> list[str]:
    keep = ("paths.output_dir", "paths.root_dir")
    return [o for o in tiny_overrides(synthetic_root, tmp_path) if not o.startswith(keep)]


def test_optuna_runs_two_trials_and_reports_the_best(synthetic_root: Path, tmp_path: Path) -> None:
    overrides = _sweep_overrides(synthetic_root, tmp_path)
    result = _cli(["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "stage=pretrain", *overrides], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "multirun").glob("*/*")
    values = []
    for job in ("0", "1"):
        summary = yaml.safe_load((sweep / job / "summary.json").read_text())
        values.append(summary["model"]["cc"])
        config = yaml.safe_load((sweep / job / "config.yaml").read_text())
        assert 1.0 <= config["loss"]["kl"] <= 20.0 and config["sweep_name"] == "optuna_loss_weights"
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(values))


@pytest.mark.parametrize(("search", "jobs"), [("loss_weights", 32), ("batch_size", 4)])
def test_grid_configs_compose(search: str, jobs: int) -> None:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"hparams_search={search}"], return_hydra_config=True)
    count = 1
    for values in cfg.hydra.sweeper.params.values():
        count *= len(str(values).split(","))
    assert count == jobs and cfg.sweep_name == search and cfg.logger.wandb.group == search


def test_resume_continues_from_the_saved_epoch_and_step(tiny_cfg, tmp_path: Path) -> None:
    cfg, overrides = tiny_cfg("stage=pretrain")
    run(cfg, overrides)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    first = torch.load(last, map_location="cpu", weights_only=True)
    assert first["epoch"] == 0 and first["global_step"] > 0
    cfg, overrides = tiny_cfg("stage=pretrain", "ckpt_path=last", "trainer.max_epochs=2")
    run(cfg, overrides)
    second = torch.load(last, map_location="cpu", weights_only=True)
    assert second["epoch"] == 1 and second["global_step"] == 2 * first["global_step"]


def test_resume_without_a_checkpoint_says_how(tiny_cfg) -> None:
    cfg, overrides = tiny_cfg("stage=pretrain", "ckpt_path=last")
    with pytest.raises(FileNotFoundError, match=r"ckpt_path=last: .*last\.ckpt does not exist.*hydra\.run\.dir"):
        run(cfg, overrides)


def test_resumed_stage_continues_the_same_wandb_run(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"logger": {"wandb": {"_target_": "x", "group": "loss_weights"}}})
    (tmp_path / "wandb_run_id.txt").write_text("abc123\n")
    resumed = _wandb_overrides(cfg, tmp_path, resuming=True)
    assert resumed.logger.wandb.id == "abc123" and resumed.logger.wandb.resume == "allow"
    assert resumed.logger.wandb.group == "loss_weights"
    assert "id" not in _wandb_overrides(cfg, tmp_path, resuming=False).logger.wandb


def test_optimized_metric_names_a_summary_value() -> None:
    summary = {"model": {"cc": 0.5, "kl": 0.9}}
    assert summary_value(summary, "model.kl") == 0.9
    with pytest.raises(KeyError, match=r"optimized_metric=model\.sim"):
        summary_value(summary, "model.sim")


def test_pipeline_resume_skips_a_finished_stage(tiny_cfg, tmp_path: Path) -> None:
    extra = ("data.salicon_per_epoch=4", "data.val_salicon_items=2")

    def steps(stage: str) -> int:
        path = tmp_path / "run" / stage / "checkpoints" / "last.ckpt"
        return torch.load(path, map_location="cpu", weights_only=True)["global_step"]

    cfg, overrides = tiny_cfg(*extra)
    first = run(cfg, overrides)
    pretrain_steps, finetune_steps = steps("pretrain"), steps("finetune")
    cfg, overrides = tiny_cfg(*extra, "ckpt_path=last", 'stage.finetune_overrides=["trainer.max_epochs=2"]')
    second = run(cfg, overrides)
    assert steps("pretrain") == pretrain_steps  # finished: restored, not trained again
    assert steps("finetune") == 2 * finetune_steps  # continued for its second epoch
    assert second["stages"]["pretrain_best"] == first["stages"]["pretrain_best"]
