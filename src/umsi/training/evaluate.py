"""Evaluation of a trained model on a validation loader next to a centre-bias baseline."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import torch
from rich.console import Console
from rich.table import Table
from torch import nn
from tqdm.auto import tqdm

from umsi.metrics.functional import accuracy, center_bias_map, correlation_coefficient, evaluation_kl


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: Iterable[dict], device: str | torch.device = "cpu", progress: bool = True
) -> dict[str, dict[str, float]]:
    """Per-image means of CC, KL (official evaluation convention, in the letterboxed output frame) and class
    accuracy for ``model``, and CC/KL of a centred Gaussian for the same images.

    → {"model": {"cc", "kl", "acc"}, "center_bias": {"cc", "kl"}, "n_images": {"count"}}
    """
    model.eval().to(device)
    sums: dict[str, float] = defaultdict(float)
    count = labelled_count = 0
    baseline = None
    for batch in tqdm(batches, desc="evaluate", disable=not progress, leave=False):
        out = model(batch["image"].to(device))
        target = batch["saliency"].to(device)
        if baseline is None or baseline.shape[-2:] != target.shape[-2:]:
            baseline = center_bias_map(*target.shape[-2:]).to(device)[None, None]
        center = baseline.expand_as(target)
        sums["model.cc"] += correlation_coefficient(out.saliency, target).sum().item()
        sums["model.kl"] += evaluation_kl(out.saliency, target).sum().item()
        labels = batch["label"].to(device)
        labelled = labels >= 0  # -1 = no class label (e.g. GDI)
        sums["model.acc"] += accuracy(out.logits, labels)[labelled].sum().item()
        labelled_count += int(labelled.sum())
        sums["center_bias.cc"] += correlation_coefficient(center, target).sum().item()
        sums["center_bias.kl"] += evaluation_kl(center, target).sum().item()
        count += target.shape[0]
    if count == 0:
        raise ValueError("evaluation got no images")
    result: dict[str, dict[str, float]] = defaultdict(dict)
    for key, total in sums.items():
        row, metric = key.split(".")
        result[row][metric] = total / (labelled_count if metric == "acc" else count)
    if labelled_count == 0:
        del result["model"]["acc"]
    result["n_images"] = {"count": count}
    return dict(result)


def summary_table(summary: dict[str, dict[str, float]], title: str = "validation") -> Table:
    """Rich table: one row per model (the trained model, the centre-bias baseline)."""
    table = Table(title=f"{title} ({summary.get('n_images', {}).get('count', '?')} images)")
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


def print_summary(summary: dict[str, dict[str, float]], title: str = "validation") -> None:
    Console().print(summary_table(summary, title))
