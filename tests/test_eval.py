"""umsi-eval: un-letterboxing, the scoring frames, and the report end to end on tiny synthetic data."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import eval_cfg as _eval_cfg
from umsi.checkpoints import find_latest_checkpoint, load_model
from umsi.data.transforms import letterbox, unletterbox
from umsi.evaluation.report import CENTER_BIAS
from umsi.evaluation.runner import evaluate


@pytest.mark.parametrize("hw", [(300, 200), (100, 400), (480, 640), (37, 91)])
def test_unletterbox_inverts_letterbox(hw: tuple[int, int]) -> None:
    ramp = np.tile(np.linspace(0, 1, hw[1], dtype=np.float32), (hw[0], 1))
    back = unletterbox(letterbox(ramp, (480, 640)), hw)
    assert back.shape == hw
    assert np.abs(back - ramp).mean() < 0.02


def test_unletterbox_follows_the_official_rule() -> None:
    # 300×200 (tall) in a 480×640 canvas: resize to (300, ⌊640·300/480⌋ = 400), keep cols [100, 300)
    canvas = np.zeros((480, 640), np.float32)
    canvas[:, 160:480] = 1.0  # where the image lies
    back = unletterbox(canvas, (300, 200))
    assert back.shape == (300, 200) and back.min() > 0.99


def test_latest_checkpoint_and_loading(trained: Path) -> None:
    path = find_latest_checkpoint(trained)
    assert path.parent.name == "checkpoints" and path.is_file()
    loaded = load_model(path)
    assert loaded.input_size == (32, 40)  # from the run's config.yaml
    assert loaded.class_names[-1] == "natural_images"


def test_report_end_to_end(trained: Path, synthetic_root: Path, tmp_path: Path) -> None:
    results = evaluate(_eval_cfg(synthetic_root, trained, "report.html=false"), tmp_path)
    tables = (tmp_path / "tables.md").read_text()
    for number in (1, 2, 3, 4):
        assert f"## Table {number}:" in tables
    assert tables.count(f"| {CENTER_BIAS} |") == 3 and "Skipped" not in tables
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    salicon = metrics["datasets"]["salicon"]
    model_name = next(name for name in salicon["models"] if name != CENTER_BIAS)
    for convention in ("umsi", "mit"):
        scores = salicon["models"][model_name][convention]
        assert {"r2", "rmse", "cc", "kl", "sim", "nss", "auc_judd", "auc_borji", "sauc", "info_gain"} <= set(scores)
        assert all(np.isfinite(v) for v in scores.values())
    assert "nss" not in metrics["datasets"]["imp1k"]["models"][model_name]["umsi"]  # no fixations in Imp1k
    assert metrics["datasets"]["gdi"]["n_images"] == 6 and "acc" not in metrics["datasets"]["gdi"]["models"][model_name]
    assert set(metrics["datasets"]["imp1k"]["models"][model_name]["per_class_acc"]) >= {"advertisements", "webpages"}
    with open(tmp_path / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    n_images = sum(metrics["datasets"][k]["n_images"] for k in ("salicon", "gdi", "imp1k"))
    assert len(rows) == 2 * n_images  # the model and the centre-bias baseline
    assert results["datasets"]["salicon"]["status"] == "evaluated"
    assert not (tmp_path / "report.html").exists() and not list(tmp_path.glob("*.png"))


def test_eval_writes_report_html_with_every_section(trained: Path, synthetic_root: Path, tmp_path: Path) -> None:
    small = ("datasets.gdi=null", "examples=1", "report.failures=1", "report.dpi=40")  # every section, less to draw
    evaluate(_eval_cfg(synthetic_root, trained, *small), tmp_path)
    page = (tmp_path / "report.html").read_text()
    for section in ("tables", "examples", "failures", "classification", "distributions", "curves"):
        assert f'<h2 id="{section}">' in page
    figures = {p.stem for p in tmp_path.glob("*.png")}
    assert {"examples_salicon_natural_images", "confusion", "distributions", "curves"} <= figures
    assert {f"examples_imp1k_{c}" for c in ("advertisements", "webpages")} <= figures
    for key in ("salicon", "imp1k"):  # the lowest-CC images fail in importance alone or also in class
        assert figures & {f"failures_{key}_importance", f"failures_{key}_both"}
    for name in figures:
        assert f'id="{name}"' in page  # every PNG is on the page


def test_absent_datasets_are_reported_as_skipped(trained: Path, synthetic_root: Path, tmp_path: Path) -> None:
    cfg = _eval_cfg(
        synthetic_root,
        trained,
        f"datasets.gdi={tmp_path / 'nope'}",
        "datasets.imp1k=null",
        "examples=0",
        "report.html=false",
        "logger.wandb=false",
    )
    results = evaluate(cfg, tmp_path)
    assert results["datasets"]["gdi"]["status"] == "skipped" and "not found" in results["datasets"]["gdi"]["reason"]
    assert results["datasets"]["imp1k"]["status"] == "skipped"
    tables = (tmp_path / "tables.md").read_text()
    assert tables.count("Skipped:") == 2 and "## Table 2:" in tables


def test_letterbox_frame_scores_at_the_output_size(trained: Path, synthetic_root: Path, tmp_path: Path) -> None:
    only_salicon = ("datasets.gdi=null", "datasets.imp1k=null", "examples=0", "report.html=false", "logger.wandb=false")
    original = evaluate(_eval_cfg(synthetic_root, trained, *only_salicon), tmp_path / "o")
    boxed = evaluate(_eval_cfg(synthetic_root, trained, "frame=letterbox", *only_salicon), tmp_path / "l")
    assert boxed["settings"]["frame"] == "letterbox"
    name = next(iter(boxed["models"]))
    cc_boxed = boxed["datasets"]["salicon"]["models"][name]["umsi"]["cc"]
    cc_original = original["datasets"]["salicon"]["models"][name]["umsi"]["cc"]
    assert np.isfinite(cc_boxed) and cc_boxed != cc_original


def test_cli(trained: Path, synthetic_root: Path, tmp_path: Path) -> None:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [
        sys.executable,
        "-m",
        "umsi.cli.eval",
        f"paths.datasets_dir={synthetic_root}",
        f"outputs_dir={trained}",
        f"output_dir={tmp_path / 'report'}",
        "progress=false",
        "datasets.gdi=null",
        "examples=0",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "## Table 1:" in result.stdout and (tmp_path / "report" / "tables.md").is_file()


def test_latest_prefers_the_newest_pipeline_run(tmp_path: Path) -> None:
    def fake_run(name: str, summary: dict) -> None:
        run_dir = tmp_path / "2026-01-01" / name
        run_dir.mkdir(parents=True)
        (run_dir / "summary.json").write_text(json.dumps(summary))

    ckpts = {name: tmp_path / f"{name}.ckpt" for name in ("old_pipeline", "new_pipeline", "single")}
    for path in ckpts.values():
        path.write_bytes(b"")
    fake_run("00-00-01", {"stages": {"finetune_best": str(ckpts["old_pipeline"])}})
    fake_run("00-00-02", {"stages": {"finetune_best": str(ckpts["new_pipeline"])}})
    fake_run("00-00-03", {"checkpoint": {"path": str(ckpts["single"])}})
    for i, name in enumerate(("00-00-01", "00-00-02", "00-00-03")):
        os.utime(tmp_path / "2026-01-01" / name / "summary.json", (1000 + i, 1000 + i))
    assert find_latest_checkpoint(tmp_path) == ckpts["new_pipeline"]
    (tmp_path / "2026-01-01" / "00-00-01" / "summary.json").unlink()
    (tmp_path / "2026-01-01" / "00-00-02" / "summary.json").unlink()
    assert find_latest_checkpoint(tmp_path) == ckpts["single"]
    with pytest.raises(FileNotFoundError, match="make train"):
        find_latest_checkpoint(tmp_path / "empty")
