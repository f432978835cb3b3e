"""The evaluation report: ``tables.md`` laid out like the paper's Tables 1–4, ``metrics.json``, ``per_image.csv``
and a picture of the best and worst examples per dataset."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from umsi.data.layouts import NATURAL_IMAGES
from umsi.utils.io import atomic_write, write_json

CENTER_BIAS = "Center bias"
# (table number, dataset key, title, columns) — columns are (header, metric key, ↑/↓)
TABLES = (
    (1, "salicon", "Visual saliency prediction on SALICON val", ("r2", "rmse", "cc", "kl", "acc")),
    (2, "gdi", "Visual importance prediction on GDI (all images)", ("r2", "rmse", "cc", "kl")),
    (3, "imp1k", "Visual importance prediction on Imp1k val", ("r2", "rmse", "cc", "kl", "acc")),
)
HEADERS = {"r2": "R² ↑", "rmse": "RMSE ↓", "cc": "CC ↑", "kl": "KL ↓", "acc": "ACC ↑"}
CLASS_TITLES = {"mobile_uis": "Mobile UIs", "natural_images": "Natural Images"}


def class_title(name: str) -> str:
    """Folder name → column title (``movie_posters`` → ``Movie Posters``)."""
    return CLASS_TITLES.get(name, name.replace("_", " ").title())


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _row(name: str, summary: dict[str, Any], columns: Sequence[str], convention: str) -> str:
    values = [summary.get("acc") if c == "acc" else summary.get(convention, {}).get(c) for c in columns]
    return "| " + " | ".join([name, *(_fmt(v) for v in values)]) + " |"


def tables_markdown(results: dict[str, Any], convention: str = "umsi") -> str:
    """Tables 1–4 for every model and the centre-bias baseline; absent datasets are marked skipped."""
    settings = results["settings"]
    lines = [
        "# UMSI evaluation",
        "",
        f"Convention: `{convention}` (see metrics.json for `mit`). Scored in the **{settings['frame']}** frame"
        + (f", prediction blurred with σ = {settings['blur_sigma']} px" if settings.get("blur_sigma") else "")
        + ". ACC = class accuracy of the model's classifier.",
        "",
    ]
    for number, key, title, columns in TABLES:
        dataset = results["datasets"][key]
        lines.append(f"## Table {number}: {title}")
        lines.append("")
        if dataset["status"] != "evaluated":
            lines += [f"Skipped: {dataset['reason']}", ""]
            continue
        lines.append(f"{dataset['n_images']} images, root `{dataset['root']}`.")
        lines.append("")
        lines.append("| Methods | " + " | ".join(HEADERS[c] for c in columns) + " |")
        lines.append("|" + " --- |" * (len(columns) + 1))
        for name, summary in dataset["models"].items():
            lines.append(_row(name, summary, columns, convention))
        lines.append("")
    lines += _per_class_table(results)
    return "\n".join(lines) + "\n"


def _per_class_table(results: dict[str, Any]) -> list[str]:
    """Table 4: per-class accuracy, design classes from Imp1k val and natural images from SALICON val."""
    lines = ["## Table 4: Classification accuracy per class (Imp1k val and SALICON val)", ""]
    per_model: dict[str, dict[str, float]] = {}
    classes: list[str] = []
    for key in ("imp1k", "salicon"):
        dataset = results["datasets"][key]
        if dataset["status"] != "evaluated":
            continue
        for name, summary in dataset["models"].items():
            for cls, value in (summary.get("per_class_acc") or {}).items():
                if key == "salicon" and cls != NATURAL_IMAGES:
                    continue
                per_model.setdefault(name, {})[cls] = value
                if cls not in classes:
                    classes.append(cls)
    if not per_model:
        return [*lines, "Skipped: neither Imp1k nor SALICON was evaluated with a classifier.", ""]
    classes.sort(key=lambda c: (c == NATURAL_IMAGES, c))
    lines.append("| Methods | " + " | ".join(class_title(c) for c in classes) + " |")
    lines.append("|" + " --- |" * (len(classes) + 1))
    for name, values in per_model.items():
        lines.append("| " + " | ".join([name, *(_fmt(values.get(c)) for c in classes)]) + " |")
    return [*lines, ""]


def write_report(out_dir: Path, results: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Path]:
    """Write tables.md, metrics.json and per_image.csv atomically; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "tables": atomic_write(out_dir / "tables.md", lambda tmp: tmp.write_text(tables_markdown(results))),
        "metrics": write_json(out_dir / "metrics.json", results),
    }
    columns = ["dataset", "model", "path", "label", "predicted_label", "correct"]
    columns += sorted({k for r in records for k in r} - set(columns))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    paths["per_image"] = atomic_write(out_dir / "per_image.csv", lambda tmp: tmp.write_text(buffer.getvalue()))
    return paths
