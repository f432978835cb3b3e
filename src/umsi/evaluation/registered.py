"""``umsi-eval registered=[ueyes,osie,…]``: score models on any registered dataset (:mod:`umsi.data.registry`) next
to the paper's three, and the models × datasets cross table (CC, KL, NSS, AUC-Judd, SIM).

Which images: the validation list the model's training run recorded for that dataset (``split.json``: a
``data=mix`` run records every dataset it trained on) when there is one, else the dataset's own validation split
(UEyes: the official test flag; the others: their configured split). The root is ``registered_roots.<name>``, else
the root recorded in ``split.json``, else ``<paths.datasets_dir>/<name>``. Maps built from fixations (OSIE) are
written once under ``registered_derived_dir``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from umsi.checkpoints.loading import LoadedModel
from umsi.data.layouts import DatasetLayoutError, SaliencyItem
from umsi.data.readers import read_map
from umsi.data.registry import find_items, materialise
from umsi.data.splits import read_split, recorded_images
from umsi.data.transforms import SampleTransform, unletterbox
from umsi.evaluation.scoring import OtherFixations, ScoringSettings, model_predictor, score
from umsi.metrics import functional as M

log = logging.getLogger(__name__)

CROSS_METRICS = (("cc", "CC ↑"), ("kl", "KL ↓"), ("nss", "NSS ↑"), ("auc_judd", "AUC-Judd ↑"), ("sim", "SIM ↑"))
UEYES_STYLE_NOTE = (
    "UEyes' own evaluation (evaluation/eval.py of the UEyes repo) computes KL as KL(P‖GT) and NSS/AUC on every "
    "non-zero heatmap pixel: its numbers are not comparable to these fixation-based NSS/AUC-Judd"
)


def _entry_for(split_path: Path | None, name: str) -> dict[str, Any] | None:
    return read_split(split_path).get(name) if split_path is not None else None


def registered_items(
    name: str,
    cfg: DictConfig,
    class_names: Sequence[str],
    split_path: Path | None,
) -> tuple[list[SaliencyItem], str, Path]:
    """(items, where they came from, root) of registered dataset ``name`` for a model with ``class_names`` whose run
    recorded ``split_path`` (None: none). Raises :class:`DatasetLayoutError` naming the dataset for a broken tree
    or a recorded image that is not in it."""
    all_options = cfg.get("registered_options") or {}
    if OmegaConf.is_config(all_options):
        all_options = OmegaConf.to_container(all_options, resolve=True)
    options = dict(all_options.get(name) or {})
    layout = str(options.pop("layout", name))
    entry = _entry_for(split_path, name)
    roots = cfg.get("registered_roots") or {}
    root = Path(str(roots.get(name) or (entry["root"] if entry else Path(cfg.paths.datasets_dir) / name)))
    found = find_items(layout, root, {"seed": cfg.seed, **options})
    found.raise_errors(key=f"registered {name} at {root}")
    if entry is not None:
        by_image = {item.image: item for item in found.items}
        wanted = recorded_images(entry, "val", root)
        missing = [p for p in wanted if p not in by_image]
        if missing:
            raise DatasetLayoutError(
                f"{split_path} lists {len(missing)} {name} validation images not in {root}, e.g. {missing[0]}; "
                f"evaluate on the tree the run used (registered_roots.{name}=…)"
            )
        chosen, source = [by_image[p] for p in wanted], f"{split_path} (the validation list recorded by the run)"
    else:
        chosen, source = found.part("val"), f"{found.source} (the dataset's validation split)"
    derived = cfg.get("registered_derived_dir")
    sigma = float(options.get("sigma", cfg.get("registered_sigma", 19.0)))
    return materialise(found, chosen, class_names, derived, sigma), source, root


def evaluate_registered(
    cfg: DictConfig,
    models: Sequence[LoadedModel],
    settings: ScoringSettings,
    split_file_of: Callable[[Path], Path | None],
    summarize: Callable[[Sequence[dict[str, Any]], Sequence[str]], dict[str, Any]],
    center_bias: str,
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Score every model and the centre-bias baseline on each dataset of ``cfg.registered``; (results' dataset
    entries, per-image records), in the shapes :func:`umsi.evaluation.runner.evaluate` writes."""
    entries: dict[str, dict[str, Any]] = {}
    records: list[dict[str, Any]] = []
    for name in cfg.get("registered") or ():
        name = str(name)
        entry: dict[str, Any] = {"status": "evaluated", "registered": True, "models": {}, "splits": {}}
        items: list[SaliencyItem] = []
        transform = None
        for loaded in models:
            items, source, root = registered_items(name, cfg, loaded.class_names, split_file_of(loaded.path))
            entry["root"], entry["splits"][loaded.name] = str(root), source
            log.info("%s images for %s: %s", name, loaded.name, source)
            others = OtherFixations(items)
            transform = SampleTransform(loaded.input_size, loaded.output_scale, loaded.preprocessing)
            predict, captured = _capturing(model_predictor(loaded))
            scored = score(items, transform, predict, settings, others, f"{name}: {loaded.name}")
            entry["models"][loaded.name] = summarize(scored, loaded.class_names)
            if _layout(cfg, name) == "ueyes":
                entry["models"][loaded.name]["ueyes_style"] = ueyes_style(items, captured)
            records += [{"dataset": name, "model": loaded.name, **r} for r in scored]
        base = score(items, transform, None, settings, None, f"{name}: centre bias")
        entry["models"][center_bias] = summarize(base, models[0].class_names)
        records += [{"dataset": name, "model": center_bias, **r} for r in base]
        entry["n_images"] = len(items)
        if name == "ueyes":
            entry["note"] = UEYES_STYLE_NOTE
        entries[name] = entry
    return entries, records


def _layout(cfg: DictConfig, name: str) -> str:
    options = cfg.get("registered_options") or {}
    return str((options.get(name) or {}).get("layout") or name)


def _capturing(predict: Callable[[torch.Tensor], tuple[torch.Tensor, Any]]) -> tuple[Callable, list[np.ndarray]]:
    """``predict`` that also keeps every (Ho, Wo) prediction, in the order scored (the scoring loader's order)."""
    captured: list[np.ndarray] = []

    def wrapped(images: torch.Tensor) -> tuple[torch.Tensor, Any]:
        maps, logits = predict(images)
        captured.extend(maps[:, 0].float().cpu().numpy())
        return maps, logits

    return wrapped, captured


def ueyes_style(items: Sequence[SaliencyItem], predictions: Sequence[np.ndarray]) -> dict[str, float]:
    """UEyes' own evaluation numbers (``evaluation/eval.py`` of the UEyes repo, as ``beyond-the-paper.md`` §1
    describes it), means over images, each prediction un-letterboxed to its heatmap's size: ``kl_reversed`` =
    KL(P‖GT) (the ``mit`` KL with the maps swapped), ``nss_heat`` = NSS with every non-zero heatmap pixel a
    fixation, ``auc_heat`` = AUC-Judd with the heatmap thresholded at 0.7 of its maximum (our reading of
    "thresholds the map at 0.7", unverified). Not comparable to the fixation-based NSS/AUC-Judd."""
    sums = {"kl_reversed": 0.0, "nss_heat": 0.0, "auc_heat": 0.0}
    for item, prediction in zip(items, predictions, strict=True):
        target = read_map(item.saliency).astype(np.float32) / 255.0
        p = torch.from_numpy(unletterbox(prediction, target.shape))[None].double()
        g = torch.from_numpy(target)[None].double()
        sums["kl_reversed"] += float(M.kl(g, p, convention="mit"))
        sums["nss_heat"] += float(M.nss(p, (g > 0).double(), convention="mit"))
        sums["auc_heat"] += float(M.auc_judd(p, (g >= 0.7 * g.max()).double(), convention="mit"))
    return {key: value / max(len(items), 1) for key, value in sums.items()}


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _markdown(title: str, meta: str | None, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = [f"## {title}", ""] + ([meta, ""] if meta else [])
    lines += ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def cross_table(results: Mapping[str, Any], convention: str = "umsi") -> tuple[list[str], list[list[str]], list[str]]:
    """Models × datasets: (headers, one row per model with every evaluated dataset's CC, KL, NSS, AUC-Judd and
    SIM, the datasets' notes)."""
    datasets = [k for k, v in results["datasets"].items() if v.get("status") == "evaluated"]
    models: list[str] = []
    for key in datasets:
        models += [m for m in results["datasets"][key]["models"] if m not in models]
    headers = ["Model", *(f"{key} {title}" for key in datasets for _, title in CROSS_METRICS)]
    rows = []
    for model in models:
        cells = [model]
        for key in datasets:
            values = results["datasets"][key]["models"].get(model, {}).get(convention, {})
            cells += [_fmt(values.get(m)) for m, _ in CROSS_METRICS]
        rows.append(cells)
    notes = [f"{key}: {results['datasets'][key]['note']}" for key in datasets if results["datasets"][key].get("note")]
    return headers, rows, notes


def dataset_tables(results: Mapping[str, Any], convention: str = "umsi") -> list[dict[str, Any]]:
    """Per registered dataset: {title, meta, headers, rows} with every model's CC, KL, NSS, AUC-Judd, SIM and
    accuracy, then, for UEyes, {title, headers, rows} of the UEyes-style numbers."""
    tables = []
    for key, dataset in results["datasets"].items():
        if not dataset.get("registered"):
            continue
        rows = [
            [model, *(_fmt(summary.get(convention, {}).get(m)) for m, _ in CROSS_METRICS), _fmt(summary.get("acc"))]
            for model, summary in dataset["models"].items()
        ]
        tables.append(
            {
                "title": key,
                "meta": f"{dataset['n_images']} images, root `{dataset['root']}`.",
                "headers": ["Methods", *(title for _, title in CROSS_METRICS), "ACC ↑"],
                "rows": rows,
            }
        )
        styled = {m: s["ueyes_style"] for m, s in dataset["models"].items() if s.get("ueyes_style")}
        if styled:
            tables.append(
                {
                    "title": f"{key}: UEyes-style numbers (UEyes' evaluation/eval.py: KL(P‖GT), NSS and AUC on the "
                    "heatmap; not comparable to the fixation-based columns)",
                    "meta": None,
                    "headers": ["Methods", "KL(P‖GT) ↓", "NSS on heat pixels ↑", "AUC on heat ≥ 0.7 ↑"],
                    "rows": [
                        [m, _fmt(v["kl_reversed"]), _fmt(v["nss_heat"]), _fmt(v["auc_heat"])] for m, v in styled.items()
                    ],
                }
            )
    return tables


def cross_table_markdown(results: Mapping[str, Any], convention: str = "umsi") -> str:
    """The models × datasets table (:func:`cross_table`) as markdown."""
    headers, rows, notes = cross_table(results, convention)
    return "\n".join([*_markdown("Models × datasets", None, headers, rows), "", *(f"- {n}" for n in notes), ""]) + "\n"


def dataset_tables_markdown(results: Mapping[str, Any], convention: str = "umsi") -> str:
    """The tables of :func:`dataset_tables` as markdown ("" without registered datasets)."""
    lines = []
    for table in dataset_tables(results, convention):
        lines += [*_markdown(table["title"], table["meta"], table["headers"], table["rows"]), ""]
    return "\n".join(lines) + "\n" if lines else ""
