"""umsi-eval: un-letterboxing, the scoring frames, and the report end to end on tiny synthetic data."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
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


def _official_postprocess(saliency: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """The official ``postprocess_predictions`` (umsi-reference §3) as written: resize the whole canvas, then crop."""
    (out_h, out_w), (height, width) = saliency.shape, hw
    if height / out_h > width / out_w:
        new_w = (out_w * height) // out_h
        left = (new_w - width) // 2
        return cv2.resize(saliency, (new_w, height), interpolation=cv2.INTER_LINEAR)[:, left : left + width]
    new_h = (out_h * width) // out_w
    top = (new_h - height) // 2
    return cv2.resize(saliency, (width, new_h), interpolation=cv2.INTER_LINEAR)[top : top + height]


@pytest.mark.parametrize("canvas", [(480, 640), (60, 80), (30, 40)])
def test_unletterbox_agrees_with_the_official_postprocessing(canvas: tuple[int, int]) -> None:
    """Cropping first changes no number: within 1e-5 of the [0, 1] range of the official resize-then-crop, for
    tall, wide, tiny, one-pixel and upscaled sizes."""
    rng = np.random.default_rng(1)
    saliency = rng.random(canvas).astype(np.float32)
    for hw in [(300, 200), (100, 400), (480, 640), (37, 91), (1, 900), (900, 1), (3, 5000), (1080, 1920), (721, 17)]:
        ours, official = unletterbox(saliency, hw), _official_postprocess(saliency, hw)
        assert ours.shape == official.shape == hw and ours.dtype == np.float32
        assert np.abs(ours - official).max() <= 1e-5, hw


def test_extreme_aspect_ratio_unletterbox_memory_is_o_of_pixels() -> None:
    """A 1×8000 (and 8000×1) image needs 8000 values, not the 6000×8000 canvas (192 MB) the resize-then-crop made:
    the peak resident memory of a fresh process grows by less than 20 MB."""
    code = (
        "import resource, numpy as np\n"
        "from umsi.data.transforms import unletterbox\n"
        "m = np.random.default_rng(0).random((480, 640)).astype(np.float32)\n"
        "unletterbox(m, (40, 60))\n"  # warm up NumPy / OpenCV
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "assert unletterbox(m, (1, 8000)).shape == (1, 8000) and unletterbox(m, (8000, 1)).shape == (8000, 1)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.strip()) < 20, f"peak memory grew {result.stdout.strip()} MB"


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


def test_wandb_offline_table_thumbnails_are_files_of_the_run(
    trained: Path, synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wandb writes an offline run's table image cells as the string "Image" and no image file (wandb issue
    #4611), so ``wandb sync`` had no thumbnail to upload. Read the offline run's files: every row of the per-image
    table names a thumbnail PNG that is among them."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for variable in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(variable, str(tmp_path / "wandb_home"))
    only_salicon = ("datasets.gdi=null", "datasets.imp1k=null", "examples=0", "logger.wandb=true")
    evaluate(_eval_cfg(synthetic_root, trained, *only_salicon), tmp_path / "report")
    (run,) = (tmp_path / "report" / "wandb").glob("offline-run-*")
    (table_file,) = (run / "files" / "media" / "table" / "per_image").glob("*.table.json")
    table = json.loads(table_file.read_text())
    column = table["columns"].index("thumbnail file")
    assert len(table["data"]) == 4  # the tiny SALICON val
    for row in table["data"]:
        thumbnail = cv2.imread(str(run / "files" / row[column]))
        assert thumbnail is not None and max(thumbnail.shape[:2]) == 128, row
