"""report.html and its figures: failure-case selection, confusion matrix, training curves from CSV logs, the
page itself and its atomic writing (a stub network on the tiny synthetic tree; no training)."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from umsi.checkpoints.loading import LoadedModel
from umsi.data import layouts
from umsi.errors import ConfigError
from umsi.evaluation import figures as F
from umsi.evaluation.training_log import read_stage_log, stage_logs
from umsi.evaluation.visual_report import (
    Evaluated,
    ReportFigureError,
    ReportSettings,
    write_visual_report,
)
from umsi.models.card import ModelCard

CLASSES = ["advertisements", "infographics", "mobile_uis", "movie_posters", "webpages", "natural_images"]


def _records(ccs: list[float], correct: list[float | None]) -> list[dict]:
    out = []
    for i, (cc, ok) in enumerate(zip(ccs, correct, strict=True)):
        record = {"path": f"/x/img_{i:02d}.png", "label": -1 if ok is None else 0, F.CC_KEY: cc, F.KL_KEY: 1 - cc}
        if ok is not None:
            record |= {"predicted_label": 0 if ok else 1, "correct": ok}
        out.append(record)
    return out


def test_failure_selection_picks_the_lowest_cc_and_the_misclassified() -> None:
    # CC of images 0..7; the 0.25-quantile of these 8 values is 0.2 + 0.75·(0.4 − 0.2) = 0.35 → low = {2, 5}
    ccs = [0.9, 0.5, 0.1, 0.8, 0.7, 0.2, 0.6, 0.4]
    correct = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]  # misclassified: 1, 4, 5
    found = F.select_failures(_records(ccs, correct), limit=10, quantile=0.25)
    assert found.cc_threshold == pytest.approx(np.quantile(ccs, 0.25))
    assert found.importance == [2]  # low CC, class right
    assert found.both == [5]  # low CC and misclassified
    assert found.classification == [1, 4]  # misclassified, CC not low; lowest CC first
    assert found.counts == {"importance": 1, "classification": 2, "both": 1}
    # at most `limit` each, lowest CC first; a larger quantile moves 7 (0.4) and 1 (0.5) into the low-CC set
    wide = F.select_failures(_records(ccs, correct), limit=2, quantile=0.5)
    assert wide.importance == [2, 7] and wide.both == [5, 1] and wide.classification == [4]
    assert wide.counts == {"importance": 2, "classification": 1, "both": 2}


def test_failure_selection_without_classes_has_only_importance_failures() -> None:
    found = F.select_failures(_records([0.3, 0.1, 0.2, 0.9], [None] * 4), limit=1, quantile=0.5)
    assert found.importance == [1] and found.counts["importance"] == 2
    assert found.classification == [] and found.both == []
    with pytest.raises(ValueError, match="low_cc_quantile"):
        F.select_failures(_records([0.3], [None]), limit=1, quantile=0)


def test_examples_spread_over_the_cc_ranking() -> None:
    records = _records([0.1 * i for i in range(10)], [None] * 10)
    assert F.select_examples(records, range(10), 4) == [9, 6, 3, 0]  # best, …, worst
    assert F.select_examples(records, [2, 5], 4) == [5, 2]
    assert F.select_examples(records, range(10), 0) == []


def test_confusion_matrix_equals_the_one_computed_by_hand() -> None:
    labels = [0, 0, 0, 1, 1, 2, 2, 2, 2, 5]
    predicted = [0, 1, 0, 1, 1, 2, 5, 2, 0, 5]
    expected = np.zeros((6, 6), dtype=np.int64)
    expected[0, 0], expected[0, 1] = 2, 1
    expected[1, 1] = 2
    expected[2, 2], expected[2, 5], expected[2, 0] = 2, 1, 1
    expected[5, 5] = 1
    counts = F.confusion_matrix(labels, predicted, 6)
    np.testing.assert_array_equal(counts, expected)
    normalised = F.row_normalized(counts)
    np.testing.assert_allclose(normalised[0], [2 / 3, 1 / 3, 0, 0, 0, 0])
    np.testing.assert_allclose(normalised[2], [0.25, 0, 0.5, 0, 0, 0.25])
    assert normalised[3].sum() == 0  # no image of class 3: an empty row, not NaN
    with pytest.raises(ValueError, match="outside"):
        F.confusion_matrix([0, 6], [0, 0], 6)


def _write_csv_log(stage_dir: Path, rows: list[dict]) -> None:
    """A Lightning CSVLogger file: step rows, validation rows and epoch rows with the learning rate."""
    path = stage_dir / "csv" / "metrics.csv"
    path.parent.mkdir(parents=True)
    columns = ["epoch", "lr", "step", "train/loss_epoch", "train/loss_step", "val/cc", "val/loss"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _stage_rows(train: list[float], val: list[float], lrs: list[float]) -> list[dict]:
    rows = []
    for epoch, (t, v, lr) in enumerate(zip(train, val, lrs, strict=True)):
        step = 10 * epoch + 9
        rows += [
            {"epoch": epoch, "step": step, "train/loss_step": t + 0.5},
            {"epoch": epoch, "step": step, "val/loss": v, "val/cc": 0.5},
            {"epoch": epoch, "step": step, "lr": lr, "train/loss_epoch": t},
        ]
    return rows


@pytest.fixture
def two_stage_run(tmp_path: Path) -> Path:
    """<run>/pretrain and <run>/finetune with CSV logs; finetuning started from pretrain's epoch-1 checkpoint."""
    run = tmp_path / "2026-01-01" / "00-00-00"
    pretrain, finetune = run / "pretrain", run / "finetune"
    _write_csv_log(pretrain, _stage_rows([3.0, 2.0, 1.5], [2.5, 1.8, 1.9], [1e-4, 1e-4, 1e-5]))
    _write_csv_log(finetune, _stage_rows([2.2, 1.6], [2.0, 1.7], [1e-4, 1e-4]))
    for stage, name in ((pretrain, "epoch001-val_loss1.8000.ckpt"), (finetune, "epoch001-val_loss1.7000.ckpt")):
        (stage / "checkpoints").mkdir()
        (stage / "checkpoints" / name).write_bytes(b"")
    handed = pretrain / "checkpoints" / "epoch001-val_loss1.8000.ckpt"
    (finetune / "config.yaml").write_text(f"init_ckpt: {handed}\n")
    return run


def test_curves_read_a_csv_log_with_two_stages(two_stage_run: Path) -> None:
    logs = stage_logs(two_stage_run / "finetune" / "checkpoints" / "epoch001-val_loss1.7000.ckpt")
    assert [log.name for log in logs] == ["pretrain", "finetune"]
    pretrain, finetune = logs
    np.testing.assert_array_equal(pretrain.epochs, [0, 1, 2])
    np.testing.assert_allclose(pretrain.train_loss, [3.0, 2.0, 1.5])
    np.testing.assert_allclose(pretrain.val_loss, [2.5, 1.8, 1.9])
    np.testing.assert_allclose(pretrain.lr, [1e-4, 1e-4, 1e-5])
    np.testing.assert_allclose(finetune.val_loss, [2.0, 1.7])
    assert [(m.epoch, m.label.split(":")[0]) for m in pretrain.marks] == [(1, "handed to finetune")]
    assert [(m.epoch, m.label.split(":")[0]) for m in finetune.marks] == [(1, "evaluated")]
    figure = F.curves_figure(logs, "Training curves · test")
    main_axes = [ax for ax in figure.axes if ax.get_legend() is not None]
    assert [ax.get_xlabel() for ax in main_axes] == ["epoch", "epoch"]
    legend = [t.get_text() for t in main_axes[0].get_legend().get_texts()]
    assert legend[:3] == ["train loss", "val loss", "learning rate"] and legend[3].startswith("handed to finetune")
    assert any(ax.get_yscale() == "log" and "learning rate" in ax.get_ylabel() for ax in figure.axes)


def test_a_log_without_epochs_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("step,loss\n1,2\n")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_stage_log(path)
    assert stage_logs(tmp_path / "converted.pt") == []  # no log next to converted weights: no curves


class _StubNet(nn.Module):
    """A network-shaped stand-in: the saliency map is the input's mean channel, upsampled ×2."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, image: torch.Tensor) -> SimpleNamespace:
        maps = torch.nn.functional.interpolate(image.mean(1, keepdim=True), scale_factor=2.0).sigmoid()
        return SimpleNamespace(saliency=maps * self.scale, logits=torch.zeros(image.shape[0], len(CLASSES)))


def _evaluated(synthetic_root: Path, run: Path) -> Evaluated:
    """Imp1k val and GDI items with made-up scores; classes 0 and 1 partly misclassified."""
    checkpoint = run / "finetune" / "checkpoints" / "epoch001-val_loss1.7000.ckpt"
    card = ModelCard("umsi", class_names=tuple(CLASSES), input_size=(32, 40), name="tiny/finetune")
    model = LoadedModel(_StubNet(), card, checkpoint, card.name)
    imp1k = layouts.imp1k_items(synthetic_root / "imp1k", CLASSES, 2, 0)[1]
    gdi = layouts.gdi_items(synthetic_root / "gdi")
    rng = np.random.default_rng(0)
    records: dict[str, list[dict]] = {"imp1k": [], "gdi": []}
    for key, items in (("imp1k", imp1k), ("gdi", gdi)):
        for i, item in enumerate(items):
            record = {"path": str(item.image), "label": item.label, F.CC_KEY: float(rng.uniform(0, 1))}
            record[F.KL_KEY] = float(rng.uniform(0, 2))
            if item.label >= 0:
                predicted = item.label if i % 3 else (item.label + 1) % len(CLASSES)
                record |= {"predicted_label": predicted, "correct": float(predicted == item.label)}
            records[key].append(record)
    return Evaluated(model, {"imp1k": imp1k, "gdi": gdi}, records)


def _results(evaluated: Evaluated) -> dict:
    evaluated_entry = {"status": "evaluated", "root": "/data", "models": {}, "n_images": 3}
    return {
        "settings": {"frame": "original", "blur_sigma": None},
        "models": {evaluated.model.name: {"path": str(evaluated.model.path), "classes": CLASSES}},
        "datasets": {
            "salicon": {"status": "skipped", "reason": "datasets.salicon not set"},
            "gdi": evaluated_entry,
            "imp1k": evaluated_entry,
        },
    }


SECTIONS = ("examples", "failures", "classification", "distributions", "curves")


def test_report_page_has_every_section(synthetic_root: Path, two_stage_run: Path, tmp_path: Path) -> None:
    evaluated = _evaluated(synthetic_root, two_stage_run)
    out = tmp_path / "report"
    written = write_visual_report(out, _results(evaluated), [evaluated], ReportSettings(examples=2, failures=2))
    page = written.html.read_text()
    for section in SECTIONS:
        assert f'<h2 id="{section}">' in page
    names = {figure.name for figure, _ in written.figures}
    assert {"confusion", "distributions", "curves", "examples_gdi", "failures_gdi_importance"} <= names
    assert {f"examples_imp1k_{c}" for c in CLASSES[:5]} <= names
    assert {"failures_imp1k_importance", "failures_imp1k_classification"} <= names
    assert "GDI (all images) has no classes" in page  # no classification failures on unlabelled data
    for figure, path in written.figures:
        assert path == out / f"{figure.name}.png" and path.read_bytes() == figure.png
        assert figure.title in page and figure.data_uri in page  # embedded: the page stands alone
        assert evaluated.model.name in figure.title  # every figure names the checkpoint …
    assert all(("GDI" in f.title or "Imp1k" in f.title) for f, _ in written.figures if f.name.startswith("ex"))
    assert not re.search(r'src="(?!data:)', page)  # … and nothing is loaded from elsewhere
    assert "Table 1: Visual saliency prediction on SALICON val" in page and "Skipped: datasets.salicon" in page


def test_a_failing_figure_is_named_and_nothing_is_written(
    synthetic_root: Path, two_stage_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluated = _evaluated(synthetic_root, two_stage_run)
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.html").write_text("the previous report")

    def broken(*args, **kwargs):
        raise RuntimeError("no ink")

    monkeypatch.setattr(F, "distributions_figure", broken)
    with pytest.raises(ReportFigureError, match=r"'distributions'.*no ink"):
        write_visual_report(out, _results(evaluated), [evaluated], ReportSettings(examples=1, failures=1))
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]  # no PNG, no temporary file
    assert (out / "report.html").read_text() == "the previous report"


def test_report_settings_are_checked_before_any_work() -> None:
    with pytest.raises(ConfigError, match=r"report\.style"):
        ReportSettings(style="heatmap")
    with pytest.raises(ConfigError, match=r"report\.colormap"):
        ReportSettings(colormap="nope")
    with pytest.raises(ConfigError, match=r"report\.low_cc_quantile"):
        ReportSettings(low_cc_quantile=1.5)
    settings = ReportSettings.from_config({"examples": 2, "report": {"html": True, "style": "overlay"}})
    assert (settings.examples, settings.style, settings.failures) == (2, "overlay", 4)
