"""The end-of-run validation table of ``umsi-train`` (the numbers come from
:func:`umsi.evaluation.runner.final_evaluation`, the code ``umsi-eval`` scores with)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def summary_caption(summary: dict[str, Any]) -> str:
    """What the numbers are: dataset, image count, frame and convention (``summary["scoring"]``)."""
    scoring = summary.get("scoring") or {}
    count = scoring.get("n_images", (summary.get("n_images") or {}).get("count", "?"))
    parts = [f"{scoring['dataset']} val" if scoring.get("dataset") else None, f"{count} images"]
    if scoring.get("frame"):
        parts.append(f"{scoring['frame']} frame")
    if scoring.get("convention"):
        parts.append(f"{scoring['convention']} convention")
    return ", ".join(p for p in parts if p)


def summary_table(summary: dict[str, Any], title: str = "validation") -> Table:
    """Rich table: one row per model (the trained model, the centre-bias baseline), titled with
    :func:`summary_caption`."""
    table = Table(title=f"{title} ({summary_caption(summary)})")
    for column in ("model", "CC ↑", "KL ↓", "accuracy ↑"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for row in ("model", "center_bias"):
        values = summary[row]
        acc = values.get("acc")
        table.add_row(
            row.replace("_", " "),
            f"{values['cc']:.3f}",
            f"{values['kl']:.3f}",
            "—" if acc is None else f"{acc:.3f}",
        )
    return table


def print_summary(summary: dict[str, Any], title: str = "validation") -> None:
    """Print :func:`summary_table`."""
    Console().print(summary_table(summary, title))
