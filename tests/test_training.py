"""Short runs of each stage, the pipeline's best-checkpoint hand-off, the LR schedule, the CLI, overfitting."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from conftest import tiny_overrides
from helpers import RecordBatches
from umsi.callbacks import StepLRDecay
from umsi.callbacks.progress import RunProgress
from umsi.training import runner
from umsi.training.runner import build_datamodule, build_module, plan_run, run

FINETUNE_TINY = ["data.salicon_per_epoch=4", "data.val_salicon_items=2"]


def _metrics(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path) as f:
        return list(csv.DictReader(f))


def test_pretrain_stage_runs_and_writes_its_outputs(tiny_cfg, tmp_path: Path) -> None:
    cfg, overrides = tiny_cfg(
        "stage=pretrain",
        "logger=csv",
        "trainer.max_epochs=2",
        "scheduler.epochs_drop=1",
        "scheduler.epoch_offset=0",
    )
    summary = run(cfg, overrides)
    out = tmp_path / "run"
    assert json.loads((out / "summary.json").read_text())["model"] == summary["model"]
    # SALICON has one class: no accuracy in the summary, no val/acc in the log (it would mean nothing)
    assert set(summary["model"]) == {"cc", "kl"} and set(summary["center_bias"]) == {"cc", "kl"}
    handoff = json.loads((out / "best_checkpoint.json").read_text())
    assert Path(handoff["best_model_path"]).is_file() and handoff["monitor"] == "val/loss"
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert (out / "config.yaml").is_file() and (out / "panels" / "epoch_001.png").is_file()
    rows = _metrics(out / "csv" / "metrics.csv")
    logged = {k for row in rows for k, v in row.items() if v}
    expected = {"train/loss_kl", "train/loss_cc", "val/loss", "val/cc", "val/kl", "lr"}
    assert expected | {"perf/epoch_seconds", "perf/train_images_per_second"} <= logged and "val/acc" not in logged
    lrs = [float(r["lr"]) for r in rows if r.get("lr")]
    assert lrs == pytest.approx([1e-4, 1e-5])  # the step decay is applied and logged each epoch
    # checkpoints load with weights_only=True (plain hyper-parameters, no pickled config objects)
    ckpt = torch.load(handoff["best_model_path"], map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["class_names"][-1] == "natural_images"


def test_finetune_stage_starts_from_a_checkpoint(tiny_cfg, trained: Path, tmp_path: Path) -> None:
    (handoff,) = trained.glob("*/*/best_checkpoint.json")  # the session's tiny pretraining run
    best = json.loads(handoff.read_text())["best_model_path"]
    cfg, overrides = tiny_cfg(
        "stage=finetune", f"init_ckpt={best}", "paths.output_dir=" + str(tmp_path / "ft"), *FINETUNE_TINY
    )
    module = build_module(cfg, build_datamodule(cfg).class_names)
    start = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    for name, value in module.state_dict().items():
        assert torch.equal(value, start[name]), name
    summary = run(cfg, overrides)
    assert summary["classes"]["names"][-1] == "natural_images"
    assert (tmp_path / "ft" / "summary.json").is_file()


def test_pipeline_hands_the_best_not_the_last_checkpoint(
    hydra_conf, synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    sabotage = "+callbacks.sabotage={_target_:helpers.ZeroOutputAfterFirstEpoch}"
    overrides = [  # with the progress bar: one row for the whole run
        *(o for o in tiny_overrides(synthetic_root, tmp_path / "run") if o != "~callbacks.progress_bar"),
        "stage=pipeline",
        *FINETUNE_TINY,
        f"stage.pretrain_overrides=['trainer.max_epochs=3','{sabotage}']",
    ]
    cfg = hydra_conf(overrides)
    plans: list[RunProgress] = []
    monkeypatch.setattr(runner, "plan_run", lambda stages: plans.append(plan_run(stages)) or plans[-1])
    summary = run(cfg, overrides)
    # the whole run's row counted every training and validation batch of both stages, sanity checks included
    (progress,) = plans
    assert [(s.name, s.epochs) for s in progress.stages] == [("pretrain", 3), ("finetune", 1)]
    final = progress.stages[-1].val_batches
    assert progress.done == {"train": progress.total["train"], "val": progress.total["val"] - final}
    assert progress.total["train"] == 3 * 3 + 1 * 4  # 12 SALICON images / 4; 10 Imp1k + 4 SALICON mixed in / 4
    assert progress.remaining() is not None and progress.remaining() < progress.elapsed()
    assert "whole run: finetune, ~" in capsys.readouterr().out
    out = tmp_path / "run"
    best = summary["stages"]["pretrain_best"]
    assert Path(best).name.startswith("epoch000") and Path(best).parent == out / "pretrain" / "checkpoints"
    handoff = json.loads((out / "pretrain" / "best_checkpoint.json").read_text())
    assert handoff["best_model_path"] == best != handoff["last_model_path"]
    finetune_cfg = (out / "finetune" / "config.yaml").read_text()
    assert f"init_ckpt: {best}" in finetune_cfg
    # the last pretrain weights have a dead output layer; finetuning from them could never revive it
    head = torch.load(summary["stages"]["finetune_best"], map_location="cpu", weights_only=True)["state_dict"]
    assert head["model.decoder.head.weight"].abs().sum() > 0
    assert json.loads((out / "summary.json").read_text())["model"]["cc"] == summary["model"]["cc"]


def test_step_lr_decay_formula() -> None:
    official = StepLRDecay(drop=0.1, epochs_drop=3, epoch_offset=1)
    assert [official.factor(e) for e in range(6)] == pytest.approx([1, 1, 0.1, 0.1, 0.1, 0.01])
    plain = StepLRDecay(drop=0.5, epochs_drop=2, epoch_offset=0)
    assert [plain.factor(e) for e in range(4)] == pytest.approx([1, 1, 0.5, 0.5])


def test_the_two_readings_of_the_schedule(hydra_conf) -> None:
    default = instantiate(hydra_conf(["paths.root_dir=/tmp/x"]).scheduler)
    constant = instantiate(hydra_conf(["paths.root_dir=/tmp/x", "scheduler=none"]).scheduler)
    assert default.epoch_offset == 1 and [constant.factor(e) for e in range(4)] == [1, 1, 1, 1]
    official, literal = StepLRDecay(), StepLRDecay(epoch_offset=0)
    assert [official.factor(e) for e in range(4)] == pytest.approx([1, 1, 0.1, 0.1])
    assert [literal.factor(e) for e in range(4)] == pytest.approx([1, 1, 1, 0.1])
    assert official.describe().endswith(
        "first changed at epoch 2 (0-based; scheduler.epoch_offset=1: the official Keras step_decay helper)"
    )
    assert "first changed at epoch 3" in literal.describe() and "the paper read literally" in literal.describe()
    assert constant.describe() == "constant lr"  # scheduler=none still logs its lr every epoch


def test_overfitting_a_few_samples_drives_the_loss_down(tiny_cfg) -> None:
    cfg, _ = tiny_cfg("stage=finetune", *FINETUNE_TINY)
    torch.manual_seed(0)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.class_names)
    batch = next(iter(datamodule.val_dataloader()))
    batch = {k: v[:4] for k, v in batch.items() if torch.is_tensor(v)}
    model, criterion = module.model.train(), module.criterion
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)  # a rate for the ~0.15 M-parameter model=tiny
    history = []
    for _ in range(40):
        out = model(batch["image"])
        loss = criterion(out.saliency, out.logits, batch["saliency"], batch["fixations"], batch["label"])
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
        history.append({k: v.item() for k, v in loss.raw.items()})
    first, last = history[0], history[-1]
    assert last["kl"] < 0.5 * first["kl"]
    assert last["cc"] > first["cc"] + 0.3
    assert last["cls"] < 0.5 * first["cls"]


def test_cli_multirun_writes_separate_job_folders(synthetic_root: Path, tmp_path: Path) -> None:
    # started from tmp_path with the default paths and hydra dirs: outputs/multirun/<date>/<time>/<job>/
    keep = ("paths.output_dir", "paths.root_dir")
    overrides = [o for o in tiny_overrides(synthetic_root, tmp_path) if not o.startswith(keep)]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "umsi.cli.train", "-m", "stage=pretrain", "loss.cc=-3,-1", *overrides]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    sweeps = list((tmp_path / "outputs" / "multirun").glob("*/*"))
    assert len(sweeps) == 1
    for job, cc in (("0", -3), ("1", -1)):
        assert (sweeps[0] / job / "summary.json").is_file()
        assert f"cc: {cc}" in (sweeps[0] / job / "config.yaml").read_text()
    table = subprocess.run(
        [sys.executable, "-m", "umsi.cli.compare", str(sweeps[0]), "--output", str(tmp_path / "cmp")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 0, table.stderr
    header, _, *rows = table.stdout.strip().splitlines()
    assert "loss.cc" in header and len(rows) == 2
    assert {row.split("|")[header.split("|").index(" loss.cc ")].strip() for row in rows} == {"-3", "-1"}


def test_lightning_redraws_the_salicon_mix_every_epoch(tiny_cfg) -> None:
    cfg, _ = tiny_cfg("stage=finetune", *FINETUNE_TINY)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.class_names)
    recorder = RecordBatches()
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[recorder],
    )
    trainer.fit(module, datamodule=datamodule)
    salicon = {epoch: {p for p in paths if "/salicon/" in p} for epoch, paths in recorder.paths.items()}
    assert sorted(salicon) == [0, 1]
    assert all(len(recorder.paths[e]) == 10 + 4 and len(salicon[e]) == 4 for e in (0, 1))
    assert salicon[0] != salicon[1]


def test_test_step_logs_the_same_metrics(tiny_cfg) -> None:
    cfg, _ = tiny_cfg("stage=finetune", *FINETUNE_TINY)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.class_names)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    (tested,) = trainer.test(module, datamodule=datamodule, verbose=False)
    (validated,) = trainer.validate(module, datamodule=datamodule, verbose=False)
    for name in ("loss", "cc", "kl", "nss", "acc"):
        assert tested[f"test/{name}"] == pytest.approx(validated[f"val/{name}"], rel=1e-6), name
