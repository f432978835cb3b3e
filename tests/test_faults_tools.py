"""Issue 13, items 7–10: a pipeline that fails after pretraining, lost metric history on resume, two runs in one
folder, tiny inputs. (Item 1, prediction outputs that collide, is in test_predict.py.)"""

from __future__ import annotations

import csv
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra.core.utils
import numpy as np
import pytest
import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from PIL import Image

from conftest import copy_run, tiny_overrides
from helpers import OneSecondClock as _OneSecond
from umsi.cli.config_check import hydra_cli
from umsi.paths import CONFIG_DIR

# ------------------------------------------------------------ item 7: every stage's needs before the first


@pytest.fixture
def data_copy(synthetic_root: Path, tmp_path: Path) -> Path:
    """A copy of the tiny synthetic tree (12 SALICON training images) that a test may break."""
    return Path(shutil.copytree(synthetic_root, tmp_path / "datasets"))


def _pipeline_cfg(hydra_conf: Callable[..., Any], datasets: Path, run_dir: Path, *extra: str) -> tuple[Any, list]:
    overrides = [*tiny_overrides(datasets, run_dir), "data.val_salicon_items=2", *extra]
    return hydra_conf(overrides), overrides


def test_pipeline_checks_the_finetuning_data_before_pretraining(hydra_conf, data_copy: Path, tmp_path: Path) -> None:
    from umsi.errors import InvalidDatasetError
    from umsi.training.runner import run

    victim = sorted((data_copy / "imp1k" / "imgs").glob("*/*"))[0]
    victim.write_bytes(b"\xff\xd8\xff\xe0 not really an image")  # an Imp1k image only finetuning reads
    cfg, overrides = _pipeline_cfg(hydra_conf, data_copy, tmp_path / "run", "data.salicon_per_epoch=4")
    with pytest.raises(InvalidDatasetError, match=victim.name):
        run(cfg, overrides)
    assert not (tmp_path / "run" / "pretrain" / "checkpoints").exists()  # stopped before pretraining
    assert victim.name in (tmp_path / "run" / "finetune" / "data_check.txt").read_text()


def test_salicon_mix_larger_than_the_images_found_draws_them_all_with_a_warning(
    hydra_conf, synthetic_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from umsi.training.runner import build_datamodule, check_run_needs
    from umsi.utils.once import forget_warnings

    cfg, overrides = _pipeline_cfg(hydra_conf, synthetic_root, tmp_path / "run")  # salicon_per_epoch: 160 > 12
    with caplog.at_level(logging.WARNING):
        check_run_needs(cfg, overrides)  # before the first stage: a warning, not a failure after pretraining
    assert "data.salicon_per_epoch=160, but" in caplog.text and "only 12 SALICON training images" in caplog.text
    caplog.clear()
    forget_warnings()  # a new run: its datamodule says it again (within one run it is said once, tests/test_runs.py)
    finetune, _ = _pipeline_cfg(hydra_conf, synthetic_root, tmp_path / "ft", "stage=finetune")
    with caplog.at_level(logging.WARNING):
        datamodule = build_datamodule(finetune)
    assert datamodule.sampler.per_epoch == 12 and "finetuning draws all 12 in every epoch" in caplog.text
    indices = list(datamodule.train_dataloader().sampler)
    imp1k = len(datamodule.train_set.datasets[0])
    assert len(indices) == imp1k + 12 and sorted(i - imp1k for i in indices if i >= imp1k) == list(range(12))


@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            'stage.finetune_overrides=["model.pretrained_file=/nowhere/xception.pth"]',
            "umsi-train: missing path: the finetune stage needs model.pretrained_file=/nowhere/xception.pth (the "
            "encoder's timm weights): no such file — give the path of a local timm weights file for the encoder, or "
            "set model.pretrained_file=null",
        ),
        (
            "data.input_size=[6,40]",
            "umsi-train: config error: data.input_size=[6, 40] is too small for the pretrain stage: the "
            "test_efficientnet encoder needs at least 8×8 px (set data.input_size=[8,40] or larger)",
        ),
    ],
)
def test_umsi_train_refuses_a_later_stages_missing_needs_before_a_run_folder_exists(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, override: str, line: str
) -> None:
    from umsi.cli.train import main

    run_dir = tmp_path / "run"
    argv = [*tiny_overrides(synthetic_root, run_dir), "data.salicon_per_epoch=4", override, f"hydra.run.dir={run_dir}"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["umsi-train", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.strip().splitlines() == [line]
    assert not run_dir.exists()


# ------------------------------------------------------------ item 8: a resumed run keeps its CSV history


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(file)]


def test_resumed_run_keeps_its_csv_metric_history(tiny_cfg, trained: Path, tmp_path: Path) -> None:
    from umsi.training.runner import run

    common = ("stage=pretrain", "logger=csv", "trainer.log_every_n_steps=1")
    copy_run(next(trained.glob("*/*/checkpoints")).parent, tmp_path / "run")  # the session's run with `common`
    metrics = tmp_path / "run" / "csv" / "metrics.csv"
    epoch0 = _rows(metrics)
    steps = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert {r["epoch"] for r in epoch0} == {"0"} and steps == 3
    # what a run killed during epoch 1 leaves behind: a row after the checkpoint's step, trained again on resume
    with metrics.open("a", newline="") as file:
        csv.DictWriter(file, fieldnames=list(csv.DictReader(metrics.open()).fieldnames)).writerow(
            {"epoch": 1, "step": steps, "train/loss_step": 999.0}
        )
    cfg, overrides = tiny_cfg(*common, "ckpt_path=last", "trainer.max_epochs=2")
    run(cfg, overrides)
    rows = _rows(metrics)
    assert rows[: len(epoch0)] == epoch0  # the history before the checkpoint, unchanged
    assert {r["epoch"] for r in rows[len(epoch0) :]} == {"1"}
    assert [int(r["step"]) for r in rows if "train/loss_step" in r] == list(range(2 * steps))
    assert all(r.get("train/loss_step") != "999.0" for r in rows)  # replaced by the resumed run's own row
    logged = [(r["step"], k) for r in rows for k in r if k not in ("step", "epoch")]
    assert len(logged) == len(set(logged))  # no metric twice at one step


# ------------------------------------------------------------ item 9: a run folder of its own


def _recording_app(seen: list[tuple[str, float]]) -> Callable[[], Any]:
    """The train config's Hydra app (run folders and all) with a task that records its folder and ``loss.kl``."""

    def task(cfg: Any) -> None:
        folder = HydraConfig.get().runtime.output_dir
        seen.append((folder, cfg.loss.kl))
        (Path(folder) / "kl.txt").write_text(str(cfg.loss.kl))

    return hydra_cli("train", config_dir=CONFIG_DIR)(task)


def test_two_runs_started_in_the_same_second_get_two_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hydra.core.utils, "datetime", _OneSecond)
    monkeypatch.chdir(tmp_path)
    seen: list[tuple[str, float]] = []
    app = _recording_app(seen)
    for argv in (["loss.kl=10"], ["loss.kl=5"], ["-m", "loss.kl=1,2"], ["-m", "loss.kl=3,4"]):
        monkeypatch.setattr(sys, "argv", ["umsi-train", *argv])
        app()
    runs = tmp_path / "outputs" / "2026-01-02"
    sweeps = tmp_path / "outputs" / "multirun" / "2026-01-02"
    assert seen == [
        (str(runs / "03-04-05"), 10),
        (str(runs / "03-04-05_2"), 5),
        (str(sweeps / "03-04-05" / "0"), 1),
        (str(sweeps / "03-04-05" / "1"), 2),
        (str(sweeps / "03-04-05_2" / "0"), 3),
        (str(sweeps / "03-04-05_2" / "1"), 4),
    ]
    for folder, kl in seen:  # each folder holds one run's files only
        assert yaml.safe_load((Path(folder) / ".hydra" / "overrides.yaml").read_text()) == [f"loss.kl={kl:g}"]
        assert (Path(folder) / "kl.txt").read_text() == str(kl)
    # resuming in an existing folder still uses that folder
    monkeypatch.setattr(sys, "argv", ["umsi-train", "loss.kl=7", f"hydra.run.dir={runs / '03-04-05'}"])
    app()
    assert seen[-1] == (str(runs / "03-04-05"), 7)


def test_a_run_folder_another_live_run_holds_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    folder = tmp_path / "outputs" / "held"
    hold = f"from umsi.cli.run_folder import hold_folder; hold_folder({str(folder)!r}); print('held', flush=True)"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold + "; input()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        seen: list[tuple[str, float]] = []
        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr(sys, "argv", ["umsi-train", "loss.kl=5", f"hydra.run.dir={folder}"])
        with pytest.raises(SystemExit) as exit_info:
            _recording_app(seen)()
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and len(err) == 1
        busy = f"umsi-train: run folder busy: {folder} is in use by a run that is still going (process {holder.pid})"
        assert err[0].startswith(busy)
        assert seen == [] and not (folder / ".hydra").exists()  # nothing written into the live run's folder
        monkeypatch.setenv("LOCAL_RANK", "1")  # a DDP process Lightning starts with its first process's folder
        _recording_app(seen)()
        assert seen == [(str(folder), 5)]
        monkeypatch.delenv("LOCAL_RANK")
    finally:
        holder.communicate("\n", timeout=60)
    _recording_app(seen)()  # the holder has ended: the folder can be resumed
    assert seen == [(str(folder), 5)] * 2


# ------------------------------------------------------------ item 10: tiny inputs


def test_tiny_inputs_get_a_value_error_naming_the_minimum_size(tmp_path: Path) -> None:
    from umsi.models import UMSI
    from umsi.models.encoder import min_input_size

    model = UMSI().eval()
    assert model.min_input_size == min_input_size("legacy_xception") == 7
    with torch.no_grad():
        for size in ((6, 64), (64, 6), (1, 1)):
            with pytest.raises(ValueError, match=r"input of \d+×\d+ px is too small: .* at least 7×7 px"):
                model(torch.zeros(1, 3, *size))
            if min(size) == 6:  # the check is not stricter than the network: without it, PyTorch fails there
                with pytest.raises(RuntimeError, match="Kernel size can't be greater than actual input size"):
                    model.encoder(torch.zeros(1, 3, *size))
        assert model(torch.zeros(1, 3, 7, 7)).saliency.shape == (1, 1, 14, 14)


def test_tiny_images_predict_at_their_own_size(tmp_path: Path) -> None:
    import umsi
    from umsi.checkpoints.loading import save_model
    from umsi.inference.predict import run_predict
    from umsi.models import UMSI

    torch.manual_seed(0)
    checkpoint = tmp_path / "tiny.ckpt"
    classes = ["advertisements", "infographics", "mobile_uis", "movie_posters", "webpages", "natural_images"]
    save_model(checkpoint, UMSI(), (32, 40), classes)
    sizes = {"dot.png": (1, 1), "line.png": (1, 60), "speck.png": (3, 2)}
    (tmp_path / "in").mkdir()
    for i, (name, hw) in enumerate(sizes.items()):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (*hw, 3), dtype=np.uint8)).save(
            tmp_path / "in" / name
        )
    model = umsi.load(checkpoint)
    for name, hw in sizes.items():
        assert model.predict(tmp_path / "in" / name).heatmap.shape == hw
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("predict", [f"ckpt={checkpoint}", f"input={tmp_path / 'in'}", "progress=false", "num_workers=0"])
    assert run_predict(cfg, tmp_path / "out") == 0
    for name, hw in sizes.items():
        heatmap = Image.open(tmp_path / "out" / name.replace(".png", "_heatmap.png"))
        assert heatmap.size[::-1] == hw
