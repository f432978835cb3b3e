"""``umsi-eval``: score checkpoints and the centre-bias baseline on SALICON val, GDI (all) and Imp1k val, then
write the report."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from umsi.checkpoints.loading import LoadedModel, find_latest_checkpoint, load_model
from umsi.data import layouts
from umsi.data.transforms import SampleTransform
from umsi.evaluation.report import CENTER_BIAS, TABLES, tables_markdown, write_report
from umsi.evaluation.scoring import OtherFixations, ScoringSettings, model_predictor, score
from umsi.evaluation.visual_report import (
    Evaluated,
    ReportFigureError,
    ReportSettings,
    WrittenReport,
    write_visual_report,
)
from umsi.evaluation.visual_report import log_to_wandb as log_report_to_wandb

log = logging.getLogger(__name__)
DATASET_KEYS = tuple(key for _, key, _, _ in TABLES)


def dataset_items(key: str, root: Path, class_names: Sequence[str], cfg: DictConfig) -> list[layouts.SaliencyItem]:
    """The evaluation split of one dataset, labelled with the model's class list (-1 where there is no class)."""
    if key == "salicon":
        label = class_names.index(layouts.NATURAL_IMAGES) if layouts.NATURAL_IMAGES in class_names else -1
        return layouts.salicon_items(root, "val", label, key="datasets.salicon")
    if key == "imp1k":
        return layouts.imp1k_items(
            root, list(class_names), cfg.imp1k.val_per_class, cfg.seed, cfg.imp1k.split_file, key="datasets.imp1k"
        )[1]
    if key == "gdi":
        return layouts.gdi_items(root, "all", key="datasets.gdi")
    raise ValueError(f"unknown dataset {key!r}; expected one of {DATASET_KEYS}")


def summarize(records: Sequence[dict[str, Any]], class_names: Sequence[str]) -> dict[str, Any]:
    """Per-image records → means per convention and metric, overall and per-class accuracy."""
    sums: dict[str, list[float]] = defaultdict(list)
    for record in records:
        for key, value in record.items():
            if "/" in key and key != "path":
                sums[key].append(value)
    summary: dict[str, Any] = {"n_images": len(records)}
    for key, values in sorted(sums.items()):
        conv, metric = key.split("/", 1)
        summary.setdefault(conv, {})[metric] = float(np.mean(values))
        summary.setdefault("n_scored", {})[metric] = len(values)
    labelled = [r for r in records if "correct" in r]
    if labelled:
        summary["acc"] = float(np.mean([r["correct"] for r in labelled]))
        per_class = defaultdict(list)
        for r in labelled:
            per_class[class_names[r["label"]]].append(r["correct"])
        summary["per_class_acc"] = {name: float(np.mean(v)) for name, v in per_class.items()}
    return summary


def evaluate(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Run the whole evaluation described by ``cfg`` (conf/eval.yaml); writes the report into ``out_dir``."""
    settings = ScoringSettings(
        frame=cfg.frame,
        blur_sigma=cfg.blur_sigma,
        borji_splits=cfg.auc_borji.splits,
        borji_step=cfg.auc_borji.step,
        seed=cfg.seed,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        device=cfg.device,
        progress=cfg.progress,
    )
    report_settings = ReportSettings.from_config(cfg) if cfg.report.html else None  # config errors before work
    models = _load_models(cfg)
    results: dict[str, Any] = {
        "settings": {"frame": cfg.frame, "blur_sigma": cfg.blur_sigma, "conventions": ["umsi", "mit"]},
        "models": {m.name: {"path": str(m.path), "classes": m.class_names} for m in models},
        "datasets": {},
    }
    records: list[dict[str, Any]] = []
    shown = {m.name: Evaluated(m, {}, {}) for m in models}  # what the figures of report.html draw
    for key in DATASET_KEYS:
        root = Path(cfg.datasets[key]) if cfg.datasets.get(key) else None
        if root is None or not root.is_dir():
            reason = f"datasets.{key}={root} not found" if root else f"datasets.{key} not set"
            log.warning("skipping %s: %s", key, reason)
            results["datasets"][key] = {"status": "skipped", "reason": reason}
            continue
        entry: dict[str, Any] = {"status": "evaluated", "root": str(root), "models": {}}
        others = None  # the sAUC negatives, read once per dataset
        for loaded in models:
            items = dataset_items(key, root, loaded.class_names, cfg)
            others = others or OtherFixations(items)
            transform = SampleTransform(loaded.input_size, loaded.output_scale, loaded.preprocessing)
            predict = model_predictor(loaded)
            model_records = score(items, transform, predict, settings, others, f"{key}: {loaded.name}")
            entry["models"][loaded.name] = summarize(model_records, loaded.class_names)
            records += [{"dataset": key, "model": loaded.name, **r} for r in model_records]
            shown[loaded.name].items[key], shown[loaded.name].records[key] = items, model_records
        base_records = score(items, transform, None, settings, others, f"{key}: centre bias")
        entry["models"][CENTER_BIAS] = summarize(base_records, models[0].class_names)
        records += [{"dataset": key, "model": CENTER_BIAS, **r} for r in base_records]
        entry["n_images"] = len(items)
        results["datasets"][key] = entry
    paths = write_report(out_dir, results, records)
    log.info("tables written to %s", paths["tables"].parent)
    written = _write_visual_report(cfg, out_dir, results, list(shown.values()), report_settings)
    if cfg.logger.wandb:
        _log_to_wandb(cfg, out_dir, results, written, list(shown.values()), report_settings)
    return results


def _write_visual_report(
    cfg: DictConfig,
    out_dir: Path,
    results: dict[str, Any],
    evaluated: list[Evaluated],
    settings: ReportSettings | None,
) -> WrittenReport | None:
    """report.html and its PNG figures (report.html=false: none). tables.md, metrics.json and per_image.csv are
    already written, so a failing figure loses no score."""
    if settings is None:
        return None
    start = time.perf_counter()
    try:
        written = write_visual_report(out_dir, results, evaluated, settings, cfg.blur_sigma)
    except ReportFigureError:
        log.error("report.html was not written; tables.md, metrics.json and per_image.csv are in %s", out_dir)
        raise
    log.info("report: %s (%d figures, %.1f s)", written.html, len(written.figures), time.perf_counter() - start)
    return written


def _load_models(cfg: DictConfig) -> list[LoadedModel]:
    checkpoints = list(cfg.checkpoints or [])
    if not checkpoints:
        raise ValueError("checkpoints is empty: give checkpoints=[path.ckpt,...] or checkpoints=[latest]")
    names = list(cfg.names or [])
    models = []
    for i, ckpt in enumerate(checkpoints):
        path = find_latest_checkpoint(cfg.outputs_dir) if ckpt == "latest" else Path(ckpt)
        name = names[i] if i < len(names) else None
        models.append(load_model(path, name=name, device=cfg.device))
        log.info("model %s: %s", models[-1].name, path)
    return models


def _log_to_wandb(
    cfg: DictConfig,
    out_dir: Path,
    results: dict[str, Any],
    written: WrittenReport | None,
    evaluated: list[Evaluated],
    settings: ReportSettings | None,
) -> None:
    """The same tables as W&B Tables, plus the report's figures and per-image scores (online with an API key,
    offline otherwise)."""
    import wandb

    from umsi.utils.loggers import wandb_mode

    run = wandb.init(
        project=cfg.logger.project,
        job_type="eval",
        dir=str(out_dir),
        mode=wandb_mode(cfg.logger.mode),
        config={"checkpoints": [str(p) for p in cfg.checkpoints], **results["settings"]},
    )
    for number, key, _, columns in TABLES:
        dataset = results["datasets"][key]
        if dataset["status"] != "evaluated":
            continue
        data = [
            [name, *[s.get("acc") if c == "acc" else s.get("umsi", {}).get(c) for c in columns]]
            for name, s in dataset["models"].items()
        ]
        run.log({f"table{number}_{key}": wandb.Table(columns=["model", *columns], data=data)})
    if written is not None and settings is not None:
        log_report_to_wandb(run, written, evaluated, settings)
    run.log({"tables_md": wandb.Html(f"<pre>{tables_markdown(results)}</pre>")})
    run.finish()
