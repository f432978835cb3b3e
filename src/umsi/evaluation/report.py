"""The evaluation's numbers: ``tables.md`` laid out like the paper's Tables 1–4, ``metrics.json`` and
``per_image.csv`` (the figures and ``report.html`` are :mod:`umsi.evaluation.visual_report`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from umsi.data.layouts import NATURAL_IMAGES
from umsi.evaluation.registered import cross_table, cross_table_markdown, dataset_tables, dataset_tables_markdown
from umsi.utils.io import atomic_write, write_json
from umsi.visualize import class_title

CENTER_BIAS = "Center bias"
# (table number, dataset key, title, columns) — columns are (header, metric key, ↑/↓)
TABLES = (
    (1, "salicon", "Visual saliency prediction on SALICON val", ("r2", "rmse", "cc", "kl", "acc")),
    (2, "gdi", "Visual importance prediction on GDI (all images)", ("r2", "rmse", "cc", "kl")),
    (3, "imp1k", "Visual importance prediction on Imp1k val", ("r2", "rmse", "cc", "kl", "acc")),
)
HEADERS = {"r2": "R² ↑", "rmse": "RMSE ↓", "cc": "CC ↑", "kl": "KL ↓", "acc": "ACC ↑"}

DATASET_TITLES = {"salicon": "SALICON val", "gdi": "GDI (all images)", "imp1k": "Imp1k val"}


@dataclass
class Table:
    """One of Tables 1–4 as text cells: what ``tables.md`` and ``report.html`` both lay out."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    n_images: int | None = None
    root: str | None = None
    skipped: str | None = None


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _cells(name: str, summary: dict[str, Any], columns: Sequence[str], convention: str) -> list[str]:
    values = [summary.get("acc") if c == "acc" else summary.get(convention, {}).get(c) for c in columns]
    return [name, *(_fmt(v) for v in values)]


def paper_tables(results: dict[str, Any], convention: str = "umsi") -> list[Table]:
    """Tables 1–4 for every model and the centre-bias baseline; absent datasets are marked skipped."""
    tables = []
    for number, key, title, columns in TABLES:
        dataset = results["datasets"][key]
        table = Table(f"Table {number}: {title}", ["Methods", *(HEADERS[c] for c in columns)])
        if dataset["status"] != "evaluated":
            table.skipped = dataset["reason"]
        else:
            table.n_images, table.root = dataset["n_images"], dataset["root"]
            table.rows = [_cells(name, s, columns, convention) for name, s in dataset["models"].items()]
        tables.append(table)
    return [*tables, _per_class_table(results)]


def registered_tables(results: dict[str, Any], convention: str = "umsi") -> list[Table]:
    """report.html's tables of ``umsi-eval registered=[…]``: one per registered dataset (UEyes-style numbers in
    their own table) and the models × datasets cross table; none without registered datasets."""
    if not any(entry.get("registered") for entry in results["datasets"].values()):
        return []
    tables = [
        Table(t["title"], list(t["headers"]), [list(r) for r in t["rows"]]) for t in dataset_tables(results, convention)
    ]
    headers, rows, notes = cross_table(results, convention)
    return [*tables, Table("Models × datasets" + "".join(f" — {n}" for n in notes), headers, rows)]


def tables_markdown(results: dict[str, Any], convention: str = "umsi") -> str:
    """Tables 1–4 for every model and the centre-bias baseline; absent datasets are marked skipped."""
    settings = results["settings"]
    lines = [
        "# UMSI evaluation",
        "",
        f"Convention: `{convention}` (see metrics.json for `mit`). Scored in the **{settings['frame']}** frame"
        + (f", prediction blurred with σ = {settings['blur_sigma']} px" if settings.get("blur_sigma") else "")
        + ". ACC = class accuracy of the model's classifier."
        + (f" Center bias: {settings['center_bias']}." if settings.get("center_bias") else ""),
        "",
    ]
    for table in paper_tables(results, convention):
        lines += [f"## {table.title}", ""]
        if table.skipped:
            lines += [f"Skipped: {table.skipped}", ""]
            continue
        if table.n_images is not None:
            frame = f"{settings['frame']} frame, " if settings.get("frame") else ""
            lines += [f"{table.n_images} images, {frame}`{convention}` convention, root `{table.root}`.", ""]
        lines.append("| " + " | ".join(table.headers) + " |")
        lines.append("|" + " --- |" * len(table.headers))
        lines += ["| " + " | ".join(row) + " |" for row in table.rows]
        lines.append("")
    if any(entry.get("registered") for entry in results["datasets"].values()):  # umsi-eval registered=[…]
        lines += [dataset_tables_markdown(results, convention), cross_table_markdown(results, convention)]
    return "\n".join(lines) + "\n"


def _per_class_table(results: dict[str, Any]) -> Table:
    """Table 4: per-class accuracy, design classes from Imp1k val and natural images from SALICON val."""
    table = Table("Table 4: Classification accuracy per class (Imp1k val and SALICON val)", ["Methods"])
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
        table.skipped = "neither Imp1k nor SALICON was evaluated with a classifier."
        return table
    classes.sort(key=lambda c: (c == NATURAL_IMAGES, c))
    table.headers += [class_title(c) for c in classes]
    table.rows = [[name, *(_fmt(values.get(c)) for c in classes)] for name, values in per_model.items()]
    return table


def write_report(
    out_dir: Path, results: dict[str, Any], records: list[dict[str, Any]], markdown: str | None = None
) -> dict[str, Path]:
    """Write tables.md (``markdown``, default :func:`tables_markdown`), metrics.json and per_image.csv atomically;
    returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = tables_markdown(results) if markdown is None else markdown
    paths = {
        "tables": atomic_write(out_dir / "tables.md", lambda tmp: tmp.write_text(text)),
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
