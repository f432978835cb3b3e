"""umsi-compare on fake run folders in the layouts umsi-train writes (no training)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import pytest
from omegaconf import OmegaConf

from umsi.cli.compare import main
from umsi.compare import comparison_table, differing_keys, find_runs, load_run, load_runs, markdown_table

HEADER = ["epoch", "step", "train/loss_step", "train/loss_epoch", "val/acc", "val/cc", "val/kl", "val/loss", "val/nss"]


def _config(run: Path, stage: str, **sections: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "task_name": "train",
        "seed": 42,
        "init_ckpt": None,
        "paths": {"root_dir": "${hydra:runtime.cwd}", "output_dir": "${hydra:runtime.output_dir}"},
        "data": {"seed": "${seed}", "batch_size": 4},
        "loss": {"kl": 10.0, "cc": -3.0},
        "optimizer": {"lr": 1e-4},
        "trainer": {"max_epochs": 3},
        # an absolute path into the run's own folder: differs between runs, but is noise
        "callbacks": {"handoff": {"path": str(run / "best_checkpoint.json")}},
        "stage": {"name": stage},
    }
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values}
    return config


def _metrics_csv(stage_dir: Path, val: list[tuple[float, float, float, float]], steps_per_epoch: int = 2) -> None:
    """A CSVLogger file: step rows, then per epoch a validation row (acc, cc, kl, loss) and a train-epoch row."""
    rows: list[dict[str, Any]] = []
    for epoch, (acc, cc, kl, loss) in enumerate(val):
        step = (epoch + 1) * steps_per_epoch - 1
        rows += [{"epoch": epoch, "step": step - 1, "train/loss_step": 1.5}, {"epoch": epoch, "step": step}]
        rows[-1] |= {"val/acc": acc, "val/cc": cc, "val/kl": kl, "val/loss": loss, "val/nss": 1.0}
        rows.append({"epoch": epoch, "step": step, "train/loss_epoch": 2.0 - epoch})
    (stage_dir / "csv").mkdir(parents=True)
    with (stage_dir / "csv" / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)
    OmegaConf.save(OmegaConf.create({"stage": {"name": stage_dir.name}}), stage_dir / "config.yaml")


def make_run(
    run: Path,
    *,
    stage: str = "pretrain",
    overrides: tuple[str, ...] = (),
    sections: dict[str, dict[str, Any]] | None = None,
    val: dict[str, list[tuple[float, float, float, float]]] | None = None,
    summary: dict[str, Any] | None = None,
    log_times: tuple[str, str] = ("2026-11-26 17:00:00,000", "2026-11-26 17:02:30,500"),
    choices: dict[str, str] | None = None,
) -> Path:
    """A run folder: .hydra/{config,overrides,hydra}.yaml, train.log, stage csv folders, summary.json if given."""
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(_config(run, stage, **(sections or {}))), run / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(list(overrides)), run / ".hydra" / "overrides.yaml")
    hydra = {"hydra": {"runtime": {"choices": {"model": "umsi", "stage": stage, **(choices or {})}}}}
    OmegaConf.save(OmegaConf.create(hydra), run / ".hydra" / "hydra.yaml")
    first, last = log_times
    (run / "train.log").write_text(
        f"[{first}][lightning_fabric.utilities.seed][INFO] - Seed set to 42\n"
        "a continuation line without a timestamp\n"
        f"[{last}][umsi.training.runner][INFO] - done\n"
    )
    for name, rows in (val or {}).items():
        _metrics_csv(run / name if name else run, rows)
    if summary is not None:
        (run / "summary.json").write_text(json.dumps(summary))
    return run


def _summary(cc: float, kl: float, acc: float, **extra: Any) -> dict[str, Any]:
    return {"model": {"cc": cc, "kl": kl, "acc": acc}, "center_bias": {"cc": 0.4}, "checkpoint": {"path": "x"}} | extra


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    """outputs/: a 2-job sweep differing in loss.cc, a single-stage run, a pipeline run and an unfinished run."""
    out = tmp_path / "outputs"
    sweep = out / "multirun" / "2026-11-26" / "15-11-08"
    for job, cc in ((0, -3.0), (1, -1.0)):
        make_run(
            sweep / str(job),
            overrides=(f"loss.cc={cc:g}", "trainer.max_epochs=2"),
            sections={"loss": {"cc": cc}, "trainer": {"max_epochs": 2}},
            val={"": [(0.2, 0.5, 1.0, 3.0), (0.3, 0.6 + job / 10, 0.9, 2.5)]},
            summary=_summary(0.6 + job / 10, 0.9, 0.3),
        )
    (sweep / "multirun.yaml").write_text("hydra:\n  mode: MULTIRUN\n")
    make_run(
        out / "2026-11-26" / "16-56-49",
        overrides=("stage=pretrain", "trainer.max_epochs=1"),
        sections={"trainer": {"max_epochs": 1}},
        val={"": [(0.28, 0.84, 0.128, -1.297)]},
        summary=_summary(0.8397, 0.1282, 0.28),
    )
    make_run(
        out / "2026-11-26" / "17-20-57",
        stage="pipeline",
        # pretrain has higher cc than finetune: best metrics must come from the last stage (finetune)
        val={
            "pretrain": [(0.0, 0.95, 0.05, -2.0)] * 3,
            "finetune": [(0.5, 0.70, 0.40, 0.30), (1.0, 0.84, 0.24, 0.012), (1.0, 0.83, 0.23, 0.02)],
        },
        summary=_summary(0.841, 0.238, 1.0, wall_seconds=576.25, stages={"pretrain_best_val_loss": -2.0}),
    )
    make_run(
        out / "2026-11-26" / "18-00-00",
        overrides=("stage=finetune", "model=umsi_official"),
        stage="finetune",
        choices={"model": "umsi_official"},
        val={"": [(0.1, 0.3, 1.5, 14.0)]},
        log_times=("2026-11-26 18:00:00,000", "2026-11-26 18:00:10,000"),
    )
    # not runs: an eval folder (.hydra without train.log / task_name train) and a folder of files
    (out / "eval" / "2026-11-26" / "16-57-33" / ".hydra").mkdir(parents=True)
    (out / "predict" / "2026-11-26").mkdir(parents=True)
    return out


def _by_name(runs: list[Any]) -> dict[str, Any]:
    return {run.name: run for run in runs}


def test_find_runs_in_sweep_and_folder_of_runs(outputs: Path) -> None:
    sweep = outputs / "multirun" / "2026-11-26" / "15-11-08"
    assert find_runs([sweep]) == [sweep / "0", sweep / "1"]
    assert find_runs([sweep / "1"]) == [sweep / "1"]
    found = {p.relative_to(outputs).as_posix() for p in find_runs([outputs, sweep])}  # the sweep is listed once
    assert found == {
        "multirun/2026-11-26/15-11-08/0",
        "multirun/2026-11-26/15-11-08/1",
        "2026-11-26/16-56-49",
        "2026-11-26/17-20-57",
        "2026-11-26/18-00-00",
    }
    assert find_runs([outputs / "eval"]) == []
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_runs([outputs / "nowhere"])


def test_load_run_reads_final_and_best_metrics(outputs: Path) -> None:
    runs = _by_name(load_runs(find_runs([outputs])))
    assert "multirun/2026-11-26/15-11-08/0" in runs

    pipeline = runs["2026-11-26/17-20-57"]
    assert pipeline.status == "finished" and pipeline.stage == "pipeline/finetune"
    assert pipeline.final == {"cc": 0.841, "kl": 0.238, "acc": 1.0}
    assert pipeline.best == {"val/cc": 0.84, "val/kl": 0.23, "val/loss": 0.012, "val/acc": 1.0}
    assert pipeline.best_epoch == {"val/cc": 1, "val/kl": 2, "val/loss": 1, "val/acc": 1}
    assert pipeline.epochs == 3
    assert pipeline.wall_seconds == 576.25  # summary.json's wall_seconds wins over train.log

    single = runs["2026-11-26/16-56-49"]
    assert single.stage == "pretrain" and single.epochs == 1
    assert single.best["val/loss"] == pytest.approx(-1.297)
    assert single.wall_seconds == pytest.approx(150.5)  # first to last timestamp of train.log
    assert single.overrides == ["stage=pretrain", "trainer.max_epochs=1"]
    assert single.config["loss.cc"] == -3.0 and single.config["paths.output_dir"] == "${hydra:runtime.output_dir}"

    unfinished = runs["2026-11-26/18-00-00"]
    assert unfinished.status == "unfinished"
    assert unfinished.final == {"cc": None, "kl": None, "acc": None}
    assert unfinished.best["val/cc"] == pytest.approx(0.3) and unfinished.wall_seconds == pytest.approx(10.0)

    assert load_run(outputs / "2026-11-26" / "16-56-49").name == "16-56-49"


def test_differing_keys(outputs: Path) -> None:
    sweep = load_runs(find_runs([outputs / "multirun"]))
    assert [r.name for r in sweep] == ["0", "1"]
    assert differing_keys(sweep) == ["loss.cc"]  # not trainer.max_epochs (same), not callbacks.handoff.path (noise)

    everything = load_runs(find_runs([outputs]))
    keys = differing_keys(everything)
    assert set(keys) == {"stage", "trainer.max_epochs", "loss.cc", "model"}  # paths and own-folder values left out

    # without overrides: all config keys, seed and own-folder paths left out
    a, b = (load_run(outputs / "2026-11-26" / n) for n in ("16-56-49", "17-20-57"))
    a.overrides, b.overrides = [], []
    b.config = {**b.config, "seed": 7, "optimizer.lr": 1e-3}
    assert differing_keys([a, b]) == ["optimizer.lr", "trainer.max_epochs", "stage.name"]


def test_table_shows_differing_key_values(outputs: Path) -> None:
    runs = load_runs(find_runs([outputs / "multirun" / "2026-11-26" / "15-11-08"]))
    table = comparison_table(runs)
    assert list(table[0])[:2] == ["run", "loss.cc"]
    assert [row["loss.cc"] for row in table] == [-3.0, -1.0]
    md = markdown_table(table).splitlines()
    assert md[0].startswith("| run | loss.cc | status |") and set(md[1]) == {"|", "-"}
    assert md[2].startswith("| 0 | -3.000 | finished |") and md[3].startswith("| 1 | -1.000 | finished |")
    assert "| 0.700 @1 |" in md[3]  # best val/cc with its epoch


def test_cli_writes_markdown_csv_and_plot(outputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "report"
    assert main([str(outputs), "--output", str(out), "--plot"]) == 0
    printed = capsys.readouterr().out
    assert printed == (out / "compare.md").read_text()
    assert "| multirun/2026-11-26/15-11-08/0 |" in printed and "| unfinished |" in printed

    with (out / "compare.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5
    # default sort: final cc, highest first; the unfinished run (no final cc) last
    assert [r["run"] for r in rows][:2] == ["2026-11-26/17-20-57", "2026-11-26/16-56-49"]
    assert rows[-1]["run"] == "2026-11-26/18-00-00" and rows[-1]["cc"] == ""
    assert float(rows[0]["best_val_cc"]) == 0.84 and rows[0]["best_val_cc_epoch"] == "1"

    image = cv2.imread(str(out / "val_curves.png"))
    assert image is not None and image.shape[1] == 2 * 560 and image.std() > 0

    assert main([str(outputs), "--output", str(out), "--sort", "val/loss"]) == 0
    with (out / "compare.csv").open(newline="") as f:
        assert next(csv.DictReader(f))["run"] == "2026-11-26/16-56-49"  # lowest val/loss first


def test_cli_bad_input_exits_2(outputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "no_such_run"
    assert main([str(outputs), str(missing), "--output", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(missing) in err and len(err.splitlines()) == 1
    assert main([str(outputs / "eval"), "--output", str(tmp_path / "r")]) == 2
    assert "no runs found" in capsys.readouterr().err
    assert main([str(outputs), "--sort", "bogus", "--output", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()


def test_python_m_entry_point(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    proc = subprocess.run([sys.executable, "-m", "umsi.cli.compare", str(missing)], capture_output=True, text=True)
    assert proc.returncode == 2 and str(missing) in proc.stderr


def test_an_encoder_sweep_shows_parameters_and_images_per_second(tmp_path: Path) -> None:
    """hparams_search=encoders: one row per encoder with its parameter count (summary.json) and training images/s
    (the last perf/train_images_per_second of the stage's CSV log)."""
    sweep = tmp_path / "multirun" / "2026-12-07" / "10-00-00"
    for job, (model, params, speed) in enumerate((("umsi", 29_850_799, 3.25), ("convnext_tiny", 32_560_359, 4.5))):
        run = make_run(
            sweep / str(job),
            overrides=(f"model={model}", "stage=pretrain"),
            choices={"model": model, "data": "salicon"},
            val={"": [(0.2, 0.5 + job / 10, 1.0, 3.0)]},
            summary=_summary(0.5 + job / 10, 1.0 - job / 10, 0.2, network={"parameters": params}),
        )
        with (run / "csv" / "metrics.csv").open("a", newline="") as f:  # the throughput row EpochThroughput logs
            csv.writer(f).writerow([0, 1, *[""] * (len(HEADER) - 2)])
        text = (run / "csv" / "metrics.csv").read_text().splitlines()
        text[0] += ",perf/train_images_per_second"
        text[-1] += f",{speed}"
        (run / "csv" / "metrics.csv").write_text("\n".join(text) + "\n")
    (sweep / "multirun.yaml").write_text("hydra:\n  mode: MULTIRUN\n")
    table = comparison_table(load_runs(find_runs([sweep])))
    assert [(r["model"], r["params"], r["images_per_s"], r["dataset"]) for r in table] == [
        ("umsi", 29_850_799, 3.25, "salicon"),
        ("convnext_tiny", 32_560_359, 4.5, "salicon"),
    ]
    md = markdown_table(table).splitlines()
    assert md[0].startswith("| run | model | status | stage | epochs | wall | params | images/s | dataset | cc | kl |")
    assert "| 29.85 M | 3.25 | salicon | 0.500 | 1.000 |" in md[2]
    assert "| 32.56 M | 4.5 | salicon | 0.600 | 0.900 |" in md[3]
