"""The run folder (umsi.runs) and issue 29: summary.json and umsi-eval agree, a run folder is a model, the logs say
where the weights came from, one warning once, no accuracy with one class."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import eval_cfg, tiny_overrides
from umsi import runs
from umsi.checkpoints.loading import model_file, resolve_checkpoint
from umsi.evaluation.runner import evaluate
from umsi.inference.predict import run_predict
from umsi.paths import CONFIG_DIR
from umsi.training.runner import build_datamodule, build_module, check_run_needs, run

SALICON_TRAIN = 12  # SALICON training images of the tiny tree (conftest.TINY_DATA)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> Iterator[tuple[Path, list[str]]]:
    """A tiny pipeline run (1 + 1 epochs at 32×40, CSV logs) asking for more SALICON images per epoch than the tree
    has; its checks run first as umsi-train runs them. Yields (run folder, the log messages of the whole run)."""
    outputs = tmp_path_factory.mktemp("outputs")
    run_dir = outputs / "2026-01-02" / "00-00-00"
    handler = _Records()
    logging.getLogger().addHandler(handler)
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.INFO)
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            overrides = [o for o in tiny_overrides(synthetic_root, run_dir) if o != "logger=none"]
            overrides += ["logger=csv", "stage=pipeline", f"data.salicon_per_epoch={SALICON_TRAIN + 5}"]
            overrides += ["data.val_salicon_items=2"]
            cfg = compose(config_name="train", overrides=overrides)
            check_run_needs(cfg, overrides)  # umsi-train's check before Hydra makes the folder
            run(cfg, overrides)
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(level)
    yield run_dir, [f"{r.levelname}: {r.getMessage()}" for r in handler.records]
    shutil.rmtree(outputs, ignore_errors=True)


def test_summary_and_umsi_eval_agree(pipeline, synthetic_root: Path, tmp_path: Path) -> None:
    run_dir, _ = pipeline
    summary = json.loads(runs.summary_file(run_dir).read_text())
    results = evaluate(
        eval_cfg(
            synthetic_root,
            tmp_path / "outputs",
            f"checkpoints=[{run_dir}]",
            "datasets.gdi=null",
            "datasets.salicon=null",
            "report.html=false",
            "logger.wandb=false",
        ),
        tmp_path / "report",
    )
    imp1k = results["datasets"]["imp1k"]
    (name,) = [n for n in imp1k["models"] if n != "Center bias"]
    for row, scored in (("model", imp1k["models"][name]), ("center_bias", imp1k["models"]["Center bias"])):
        for metric in ("cc", "kl"):
            assert summary[row][metric] == pytest.approx(scored["umsi"][metric], abs=1e-6), (row, metric)
    assert summary["model"]["acc"] == pytest.approx(imp1k["models"][name]["acc"], abs=1e-6)
    # both state frame, convention and image count, and they are the same
    scoring = summary["scoring"]
    assert (scoring["dataset"], scoring["frame"], scoring["convention"]) == ("imp1k", "original", "umsi")
    assert scoring["n_images"] == imp1k["n_images"] == summary["n_images"]["count"] == 10
    tables = (tmp_path / "report" / "tables.md").read_text()
    assert "10 images, original frame, `umsi` convention" in tables and "Center bias: centred Gaussian" in tables
    assert imp1k["frame"] == "original" and imp1k["convention"] == "umsi"


def test_a_run_or_stage_folder_is_a_model(pipeline, tmp_path: Path, caplog) -> None:
    run_dir, _ = pipeline
    summary = json.loads(runs.summary_file(run_dir).read_text())
    assert runs.best_checkpoint(run_dir) == Path(summary["stages"]["finetune_best"])
    assert runs.best_checkpoint(run_dir / "pretrain") == Path(summary["stages"]["pretrain_best"])
    with caplog.at_level(logging.INFO, logger="umsi"):
        assert model_file(run_dir, "ckpt") == Path(summary["stages"]["finetune_best"])
    assert f"using its checkpoint {summary['stages']['finetune_best']}" in caplog.text
    # umsi-predict, -serve and -export resolve ckpt= the same way
    assert resolve_checkpoint(OmegaConf.create({"ckpt": str(run_dir / "finetune")})) == runs.best_checkpoint(run_dir)
    # a folder that is not a run is refused, saying what was expected
    (tmp_path / "photos").mkdir()
    with pytest.raises(runs.NotARunError, match=r"ckpt=.*photos is not a run folder; expected a umsi-train run"):
        model_file(tmp_path / "photos", "ckpt")


def test_umsi_predict_takes_a_run_folder(pipeline, synthetic_root: Path, tmp_path: Path, caplog) -> None:
    run_dir, _ = pipeline
    image = next((synthetic_root / "imp1k" / "imgs").rglob("*.png"))
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("predict", overrides=[f"ckpt={run_dir}", f"input={image}", "progress=false", "num_workers=0"])
    with caplog.at_level(logging.INFO, logger="umsi"):
        assert run_predict(cfg, tmp_path / "out") == 0
    chosen = json.loads((tmp_path / "out" / "predictions.json").read_text())["checkpoint"]
    assert chosen == str(runs.best_checkpoint(run_dir)) and f"using its checkpoint {chosen}" in caplog.text


def test_the_logs_of_a_pipeline_tell_the_truth(pipeline) -> None:
    run_dir, messages = pipeline
    # the SALICON mix warning: checked by umsi-train, the runner and the datamodule, said once
    assert sum(m.startswith("WARNING: data.salicon_per_epoch=17, but") for m in messages) == 1
    warnings = [m for m in messages if m.startswith("WARNING: ")]
    assert len(warnings) == len(set(warnings)), warnings  # no warning twice
    summary = json.loads(runs.summary_file(run_dir).read_text())
    starts = [m.split(": ", 1)[1] for m in messages if " stage: " in m and ("weights" in m or "encoder" in m)]
    assert starts[0].startswith("pretrain stage: training starts from random weights")
    assert starts[1] == f"finetune stage: weights from init_ckpt={summary['stages']['pretrain_best']} (every layer)"
    assert not any("built without" in m for m in messages)
    # val/acc: not in pretraining (SALICON: one class), logged in finetuning (Imp1k classes)
    logged = {stage: {k for row in runs.epoch_log(run_dir / stage).values() for k in row} for stage in runs.STAGES}
    assert "val/acc" not in logged["pretrain"] and "val/acc" in logged["finetune"]


def test_weights_from_a_pretrained_file_are_logged(tiny_cfg, tmp_path: Path, caplog) -> None:
    import timm

    path = tmp_path / "test_efficientnet.pth"  # the encoder of the tiny runs' model=tiny
    torch.save(timm.create_model("test_efficientnet", pretrained=False).state_dict(), path)
    cfg, _ = tiny_cfg("stage=pretrain", f"model.pretrained_file={path}")
    with caplog.at_level(logging.INFO, logger="umsi"):
        build_module(cfg, build_datamodule(cfg).class_names)
    assert f"pretrain stage: encoder test_efficientnet from model.pretrained_file={path}" in caplog.text


def test_the_epoch_log_is_read_once_per_epoch(tmp_path: Path) -> None:
    stage = tmp_path / "run" / "pretrain"
    runs.csv_log(stage).parent.mkdir(parents=True)
    runs.csv_log(stage).write_text(
        "epoch,step,train/loss_epoch,val/loss,lr\n0,1,,2.0,\n0,1,3.0,,0.1\n1,2,,nan,\n1,2,,1.5,\n"
    )
    assert runs.epoch_log(stage) == {0: {"step": 1.0, "val/loss": 2.0, "train/loss_epoch": 3.0, "lr": 0.1},
                                     1: {"step": 2.0, "val/loss": 1.5}}  # fmt: skip
    assert runs.stage_dirs(tmp_path / "run") == [stage] and runs.run_of(stage) == tmp_path / "run"
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="no 'epoch' column"):
        runs.epoch_log(tmp_path / "bad.csv")


@pytest.mark.parametrize(
    ("config_name", "override", "message"),
    [
        (
            "eval",
            "data.input_size=[120,160]",
            "unknown key 'data.input_size' — umsi-eval takes the input size from each model file (data.input_size "
            "of the run that trained it); pass input_size=[H,W] to override it",
        ),
        (
            "predict",
            "data.preprocessing=timm",
            "unknown key 'data.preprocessing' — umsi-predict takes the preprocessing (normalisation and channel "
            "order) from each model file",
        ),
        ("serve", "trainer.max_epochs=3", "unknown key 'trainer.max_epochs' — trainer.max_epochs is a umsi-train"),
        ("eval", "ckpt=a.ckpt", "unknown key 'ckpt' — umsi-eval takes its model as checkpoints=[a.ckpt,<run folder>"),
        ("train", "checkpoints=[a.ckpt]", "unknown key 'checkpoints' — umsi-train starts from weights with init_ckpt="),
        ("train", "frame=letterbox", "unknown key 'frame' — frame is a umsi-eval setting: score the trained run"),
    ],
)
def test_keys_of_another_tool_or_of_the_model_file_get_the_right_hint(
    config_name: str, override: str, message: str
) -> None:
    from umsi.cli.config_check import check_overrides
    from umsi.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        check_overrides(config_name, [override], CONFIG_DIR)
    assert str(err.value).startswith(message) and "did you mean" not in str(err.value)
