"""``umsi-eval``: score checkpoints and the centre-bias baseline on SALICON val, GDI (all) and Imp1k val, then
write the report."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from umsi import runs
from umsi.checkpoints.exported import SUFFIXES as EXPORTED_SUFFIXES
from umsi.checkpoints.loading import LoadedModel, find_latest_checkpoint, load_exported_model, load_model, model_file
from umsi.data import layouts
from umsi.data.splits import read_split, recorded_images
from umsi.data.transforms import SampleTransform
from umsi.evaluation.registered import evaluate_registered
from umsi.evaluation.report import CENTER_BIAS, TABLES, tables_markdown, write_report
from umsi.evaluation.scoring import (
    CENTER_BIAS_DOC,
    CONVENTIONS,
    OtherFixations,
    ScoringSettings,
    model_calibration,
    model_predictor,
    score,
)
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


def run_split_file(checkpoint: Path) -> Path | None:
    """The recorded split (``<stage dir>/split.json``) of the run that wrote ``checkpoint``
    (``<stage dir>/checkpoints/*.ckpt``); ``None`` for other files (converted official weights …) or older runs."""
    stage = runs.stage_of(checkpoint)
    path = runs.split_file(stage) if stage is not None else None
    return path if path is not None and path.is_file() else None


def dataset_items(
    key: str, root: Path, class_names: Sequence[str], cfg: DictConfig, split_path: Path | None = None
) -> tuple[list[layouts.SaliencyItem], str]:
    """The evaluation split of one dataset, labelled with the model's class list (-1 where there is no class), and
    where it came from. Imp1k val is, in order of preference: the validation list recorded by the model's training
    run (``split_path``), the dataset's split file, or a hold-out drawn with ``cfg.seed`` (said in a warning, since
    a model trained on this tree with another seed may have trained on some of those images). Images of the run's
    recorded training list are never scored silently: any overlap is a warning naming the count."""
    entry, why = _recorded_entry(split_path, key, root)
    if key == "salicon":
        label = class_names.index(layouts.NATURAL_IMAGES) if layouts.NATURAL_IMAGES in class_names else -1
        items, source = layouts.salicon_items(root, "val", label, key="datasets.salicon"), "the SALICON val folder"
    elif key == "imp1k" and entry is not None:
        names = [_imgs_relative(path, root, split_path) for path in recorded_images(entry, "val", root)]
        items = layouts.imp1k_named_items(root, list(class_names), names, split_path, key="datasets.imp1k")
        source = f"{split_path} (the validation list recorded by the model's training run)"
    elif key == "imp1k":
        split_file = layouts.imp1k_split_file(root, cfg.imp1k.split_file)
        items = layouts.imp1k_items(
            root, list(class_names), cfg.imp1k.val_per_class, cfg.seed, cfg.imp1k.split_file, key="datasets.imp1k"
        )[1]
        if split_file is not None:
            source = f"{split_file} ({why})"
        else:
            source = (
                f"{why} and no {cfg.imp1k.split_file} in {root}: "
                f"{cfg.imp1k.val_per_class} images per class held out with seed {cfg.seed} (umsi-eval's seed); a "
                "model trained on this tree with another seed may have trained on some of them"
            )
            log.warning("imp1k: %s", source)
    elif key == "gdi":
        items, source = layouts.gdi_items(root, "all", key="datasets.gdi"), "all of GDI (train and val folders)"
    else:
        raise ValueError(f"unknown dataset {key!r}; expected one of {DATASET_KEYS}")
    if entry is not None:
        trained = set(recorded_images(entry, "train", root))
        overlap = sum(item.image in trained for item in items)
        if overlap:
            log.warning(
                "%s: %d of the %d images scored are in the training list of %s", key, overlap, len(items), split_path
            )
    return items, source


def _recorded_entry(split_path: Path | None, key: str, root: Path) -> tuple[dict[str, Any] | None, str]:
    """The entry of dataset ``key`` in a run's recorded split, if it applies to the tree at ``root``: some of its
    images lie under ``root`` (where it was recorded, or a copy moved here) and every image of its validation list,
    the one that is scored, does. The training list is never scored, so an evaluation-only tree (SALICON val,
    Imp1k test) without it is fine. With none of its images there, it was recorded for another tree (the model is
    evaluated on other data): ``None`` and why. A validation image missing from this tree:
    :class:`~umsi.data.layouts.DatasetLayoutError`."""
    if split_path is None:
        return None, "no split recorded with the checkpoint"
    entry = read_split(split_path).get(key)
    if entry is None:
        return None, f"{split_path} has no {key} lists"
    scored = recorded_images(entry, "val", root)
    if not any(path.is_file() for path in scored + recorded_images(entry, "train", root)):
        return None, f"{split_path} is for another {key} tree ({entry['root']})"
    missing = sum(not path.is_file() for path in scored)
    if missing:
        raise layouts.DatasetLayoutError(
            f"{split_path}: {missing} of the {len(scored)} {key} images the run validated on (the ones scored) are "
            f"missing under {root}; evaluate on the tree the run used, or restore them"
        )
    return entry, ""


def _imgs_relative(path: Path, root: Path, split_path: Path | None) -> str:
    try:
        return path.relative_to(root / "imgs").as_posix()
    except ValueError:
        raise layouts.DatasetLayoutError(
            f"{split_path} records the Imp1k image {path}, which is not under {root / 'imgs'} (datasets.imp1k): "
            "evaluate on the Imp1k tree the run trained on"
        ) from None


def split_lines(results: dict[str, Any]) -> list[str]:
    """One line per dataset and model: which images were scored (``results["datasets"][key]["splits"]``)."""
    return [
        f"{key} for {name}: {source}"
        for key, entry in results["datasets"].items()
        for name, source in (entry.get("splits") or {}).items()
    ]


def summarize(records: Sequence[dict[str, Any]], class_names: Sequence[str]) -> dict[str, Any]:
    """Per-image records → means per convention and metric, overall and per-class accuracy; ``n_scored`` per
    metric, and ``n_without_fixations``: images with a fixation file but no fixation inside the image, left out of
    the fixation metrics (NSS, AUC, sAUC, IG) as pysaliency does."""
    sums: dict[str, list[float]] = defaultdict(list)
    for record in records:
        for key, value in record.items():
            if "/" in key and key != "path":
                sums[key].append(value)
    summary: dict[str, Any] = {"n_images": len(records)}
    if any("n_fixations" in record for record in records):
        summary["n_without_fixations"] = sum(record.get("n_fixations") == 0 for record in records)
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


def scoring_settings(cfg: DictConfig) -> ScoringSettings:
    """The :class:`ScoringSettings` of an eval config (conf/eval.yaml)."""
    return ScoringSettings(
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


def score_dataset(
    key: str, root: Path, models: Sequence[LoadedModel], cfg: DictConfig, settings: ScoringSettings
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, tuple[list[layouts.SaliencyItem], list[dict[str, Any]]]]]:
    """Score every model and the centre-bias baseline (:func:`~umsi.evaluation.scoring.center_bias`) on the
    evaluation images of dataset ``key`` (:func:`dataset_items`, a model's recorded split first): what both
    ``umsi-eval`` and the end of a training run (:func:`final_evaluation`) do.

    → (entry: ``{"status", "root", "frame", "convention", "n_images", "splits": {model: source}, "models": {name:
    summarize(...)}}``, per-image records tagged with dataset and model, per model name the items scored and their
    untagged records)."""
    entry: dict[str, Any] = {
        "status": "evaluated",
        "root": str(root),
        "frame": settings.frame,
        "convention": CONVENTIONS[0],
        "models": {},
    }
    records: list[dict[str, Any]] = []
    scored: dict[str, tuple[list[layouts.SaliencyItem], list[dict[str, Any]]]] = {}
    others = None  # the sAUC negatives, read once per dataset
    for loaded in models:
        items, source = dataset_items(key, root, loaded.class_names, cfg, run_split_file(loaded.path))
        entry.setdefault("splits", {})[loaded.name] = source
        log.info("%s images for %s: %s", key, loaded.name, source)
        if others is None and settings.wants("sauc"):
            others = OtherFixations(items)
        transform = SampleTransform(loaded.input_size, loaded.output_scale, loaded.preprocessing)
        calibrate = model_calibration(loaded, str(cfg.get("calibration") or "none"))
        model_records = score(
            items, transform, model_predictor(loaded), settings, others, f"{key}: {loaded.name}", calibrate=calibrate
        )
        entry["models"][loaded.name] = summarize(model_records, loaded.class_names)
        records += [{"dataset": key, "model": loaded.name, **r} for r in model_records]
        scored[loaded.name] = (items, model_records)
    base_records = score(items, transform, None, settings, others, f"{key}: centre bias")
    entry["models"][CENTER_BIAS] = summarize(base_records, models[0].class_names)
    if entry["models"][CENTER_BIAS].get("n_without_fixations"):
        log.warning(
            "%s: %d of %d images have no fixation inside the image: left out of NSS, AUC, sAUC and IG",
            key,
            entry["models"][CENTER_BIAS]["n_without_fixations"],
            len(items),
        )
    records += [{"dataset": key, "model": CENTER_BIAS, **r} for r in base_records]
    entry["n_images"] = len(items)
    return entry, records, scored


def evaluate(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Run the whole evaluation described by ``cfg`` (conf/eval.yaml); writes the report into ``out_dir``."""
    settings = scoring_settings(cfg)
    report_settings = ReportSettings.from_config(cfg) if cfg.report.html else None  # config errors before work
    models = _load_models(cfg)
    results: dict[str, Any] = {
        "settings": {
            "frame": cfg.frame,
            "blur_sigma": cfg.blur_sigma,
            "conventions": list(CONVENTIONS),
            "center_bias": CENTER_BIAS_DOC,
        },
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
        entry, dataset_records, scored = score_dataset(key, root, models, cfg, settings)
        for name, (items, model_records) in scored.items():
            shown[name].items[key], shown[name].records[key] = items, model_records
        records += dataset_records
        results["datasets"][key] = entry
    if cfg.get("registered"):  # umsi-eval registered=[ueyes,osie,…]: any registered dataset, and the cross table
        extra, extra_records = evaluate_registered(cfg, models, settings, run_split_file, summarize, CENTER_BIAS)
        results["datasets"].update(extra)
        records += extra_records
    paths = write_report(out_dir, results, records)
    log.info("tables written to %s", paths["tables"].parent)
    written = _write_visual_report(cfg, out_dir, results, list(shown.values()), report_settings)
    if cfg.logger.wandb:
        _log_to_wandb(cfg, out_dir, results, written, list(shown.values()), report_settings)
    return results


def validated_dataset(split: dict[str, dict[str, Any]]) -> str:
    """The dataset a training stage validated on: the first entry of its recorded split with a validation list
    (``imp1k`` for finetuning, whose SALICON entry is the mixed-in pool, ``salicon`` for pretraining)."""
    for key, entry in split.items():
        if entry.get("val"):
            return key
    raise ValueError("the recorded split has no validation images")


def final_evaluation(
    checkpoint: str | Path, cfg: DictConfig, settings: ScoringSettings | None = None, device: str = "cpu"
) -> dict[str, Any]:
    """The end-of-run evaluation of ``umsi-train``: the model at ``checkpoint`` and the centre-bias baseline scored
    exactly as ``umsi-eval checkpoints=[<checkpoint>]`` scores them (:func:`score_dataset`, the same images from the
    stage's ``split.json``, the same frame and centre bias), on the dataset the stage validated on.

    ``cfg``: the stage's training config (``seed``, ``data.*``). ``settings``: by default ``umsi-eval``'s
    (conf/eval.yaml: the original frame) restricted to CC and KL.

    → ``{"model": {"cc", "kl"[, "acc"]}, "center_bias": {"cc", "kl"}, "n_images": {"count"}, "scoring": {"dataset",
    "frame", "convention", "n_images", "split", "center_bias"}}`` (``umsi`` convention). ``acc`` only where the
    images scored carry two classes or more: with one class, accuracy means nothing."""
    checkpoint = Path(checkpoint)
    stage = runs.stage_of(checkpoint)
    split_path = runs.split_file(stage) if stage is not None else None
    if split_path is None or not split_path.is_file():
        raise FileNotFoundError(f"{checkpoint}: no {runs.SPLIT_FILE} in its stage folder to evaluate on")
    split = read_split(split_path)
    key = validated_dataset(split)
    settings = settings or ScoringSettings(metrics=("cc", "kl"), device=device, progress=False)
    eval_cfg = OmegaConf.create(
        {
            "seed": int(cfg.get("seed") or 0),
            "imp1k": {
                "split_file": OmegaConf.select(cfg, "data.split_file", default=None),
                "val_per_class": int(OmegaConf.select(cfg, "data.val_per_class", default=40)),
            },
        }
    )
    loaded = load_model(checkpoint, device=settings.device)
    if key in DATASET_KEYS:
        entry, records, _ = score_dataset(key, Path(split[key]["root"]), [loaded], eval_cfg, settings)
    else:  # a registered dataset (data=ueyes|osie|…): scored as umsi-eval registered=[<key>] scores it
        entry, records = _score_registered(key, Path(split[key]["root"]), cfg, loaded, settings)
    model, baseline = entry["models"][loaded.name], entry["models"][CENTER_BIAS]
    convention = entry["convention"]
    summary: dict[str, Any] = {
        "model": {m: model[convention][m] for m in ("cc", "kl")},
        "center_bias": {m: baseline[convention][m] for m in ("cc", "kl")},
    }
    labels = {r["label"] for r in records if r["model"] == loaded.name and r.get("label", -1) >= 0}
    if "acc" in model and len(labels) > 1:
        summary["model"]["acc"] = model["acc"]
    summary["n_images"] = {"count": entry["n_images"]}
    summary["classes"] = {"names": loaded.class_names}
    summary["scoring"] = {
        "dataset": key,
        "frame": entry["frame"],
        "convention": convention,
        "n_images": entry["n_images"],
        "split": entry["splits"][loaded.name],
        "center_bias": CENTER_BIAS_DOC,
    }
    return summary


def _score_registered(
    key: str, root: Path, cfg: DictConfig, loaded: LoadedModel, settings: ScoringSettings
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """:func:`final_evaluation` on a registered dataset: ``umsi-eval registered=[<key>]``'s scoring
    (:func:`~umsi.evaluation.registered.evaluate_registered`) with the training config's layout options for it."""
    data = cfg.get("data") or {}
    options = {
        str(k): OmegaConf.select(data, str(k), throw_on_resolution_failure=False) for k in data if str(k) != "root"
    }
    registered_cfg = OmegaConf.create(
        {
            "seed": int(cfg.get("seed") or 0),
            "registered": [key],
            "registered_roots": {key: str(root)},
            "registered_options": {key: options if options.get("layout", key) == key else {}},
            "registered_derived_dir": options.get("derived_dir") or str(root.parent / "cache" / "derived"),
            "registered_sigma": float(options.get("sigma") or 19.0),
            "paths": {"datasets_dir": str(root.parent)},
        }
    )
    entries, records = evaluate_registered(registered_cfg, [loaded], settings, run_split_file, summarize, CENTER_BIAS)
    return {**entries[key], "frame": settings.frame, "convention": CONVENTIONS[0]}, records


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
        path = find_latest_checkpoint(cfg.outputs_dir) if ckpt == "latest" else model_file(ckpt, "checkpoints")
        name = names[i] if i < len(names) else None
        if path.suffix.lower() in EXPORTED_SUFFIXES:  # an umsi-export file (int8 included): onnxruntime / the CPU
            loaded = load_exported_model(path, name=name)
        else:
            loaded = load_model(path, name=name, device=cfg.device)
        size = cfg.get("input_size")
        if size:  # input_size=[H,W] replaces the input size of the model file's card
            loaded = replace(loaded, card=loaded.card.replace(input_size=tuple(int(v) for v in size)))
        models.append(loaded)
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
