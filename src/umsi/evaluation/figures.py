"""The report's choices and charts, from per-image records (``umsi.evaluation.scoring.score``): which images the
Examples and Failure-case grids show, the confusion matrix, per-class distributions of CC and KL, and the training
curves. Every chart is a matplotlib ``Figure`` (drawn on the Agg canvas by :func:`umsi.visualize.figure_png`).

Failure cases follow the reproduction paper's Figures 5–7: importance failures (low CC, class right or no class),
classification failures (wrong class, CC not low) and both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from umsi.evaluation.training_log import StageLog

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CC_KEY, KL_KEY = "umsi/cc", "umsi/kl"  # the convention of Tables 1–4
CC_LABEL = "CC (Pearson correlation, −1…1, higher is better)"
KL_LABEL = "KL divergence (nats, lower is better)"


def _cc_order(records: Sequence[Mapping[str, Any]], indices: Sequence[int]) -> list[int]:
    """``indices`` sorted by CC ascending, ties by path (deterministic)."""
    return sorted(indices, key=lambda i: (records[i][CC_KEY], str(records[i].get("path", ""))))


def select_examples(records: Sequence[Mapping[str, Any]], indices: Sequence[int], n: int) -> list[int]:
    """``n`` of ``indices`` spread evenly over their CC ranking, best first (all of them when there are ≤ n), so a
    class's examples show its best, typical and worst predictions."""
    ranked = _cc_order(records, indices)[::-1]
    if n <= 0 or not ranked:
        return []
    if len(ranked) <= n:
        return ranked
    positions = np.linspace(0, len(ranked) - 1, n).round().astype(int)
    return [ranked[p] for p in positions]


@dataclass(frozen=True)
class Failures:
    """Indices into the records of one dataset, lowest CC first, at most ``limit`` each, plus how many there are.

    - ``importance``: CC at or below the ``quantile`` of the dataset's CC, class right or not class-labelled
      (paper Figure 5);
    - ``classification``: class wrong, CC above that threshold (Figure 6);
    - ``both``: class wrong and CC at or below the threshold (Figure 7).
    """

    importance: list[int]
    classification: list[int]
    both: list[int]
    counts: dict[str, int]
    cc_threshold: float
    quantile: float


def select_failures(records: Sequence[Mapping[str, Any]], limit: int, quantile: float = 0.25) -> Failures:
    """Failure cases of one dataset's records (each with ``umsi/cc`` and, when class-labelled, ``correct``).
    ``quantile`` in (0, 1]: an image is an importance failure when its CC is at or below the dataset's
    ``quantile``-quantile (numpy's linear interpolation). Raises ValueError for a quantile outside (0, 1]."""
    if not 0 < quantile <= 1:
        raise ValueError(f"report.low_cc_quantile={quantile}: give a fraction in (0, 1], e.g. 0.25")
    if not records:
        return Failures([], [], [], {"importance": 0, "classification": 0, "both": 0}, float("nan"), quantile)
    threshold = float(np.quantile([r[CC_KEY] for r in records], quantile))
    low = {i for i, r in enumerate(records) if r[CC_KEY] <= threshold}
    wrong = {i for i, r in enumerate(records) if r.get("correct") == 0.0}
    groups = {"importance": low - wrong, "classification": wrong - low, "both": low & wrong}
    chosen = {kind: _cc_order(records, sorted(members))[: max(limit, 0)] for kind, members in groups.items()}
    counts = {kind: len(members) for kind, members in groups.items()}
    return Failures(chosen["importance"], chosen["classification"], chosen["both"], counts, threshold, quantile)


def confusion_matrix(labels: Sequence[int], predicted: Sequence[int], num_classes: int) -> np.ndarray:
    """(K, K) int64 counts: row = true class, column = predicted class. Labels outside [0, K) raise ValueError."""
    labels, predicted = np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    if labels.shape != predicted.shape:
        raise ValueError(f"{labels.shape[0]} labels but {predicted.shape[0]} predictions")
    for name, values in (("label", labels), ("predicted label", predicted)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"a {name} outside [0, {num_classes}): {values.min()}…{values.max()}")
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels, predicted), 1)
    return counts


def row_normalized(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the fraction of a true class predicted as each class); empty rows stay 0."""
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape, dtype=np.float64), where=totals > 0)


def confusion_figure(counts: np.ndarray, class_titles: Sequence[str], title: str) -> Figure:
    """Two heat maps side by side: counts (images) and row-normalised fractions, each cell written out."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    k = len(class_titles)
    fig = Figure(figsize=(2 * (0.75 * k + 2.4), 0.75 * k + 1.7), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = (
        (counts, "counts", "images", "d", counts.max() or 1),
        (row_normalized(counts), "row-normalised", "fraction of the true class", ".2f", 1.0),
    )
    for ax, (values, name, unit, fmt, vmax) in zip(axes, panels, strict=True):
        shown = ax.imshow(values, cmap="Blues", vmin=0, vmax=vmax)
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=8, color="white" if v > vmax / 2 else "k")
        ax.set_xticks(range(k), class_titles, rotation=35, ha="right", fontsize=8)
        ax.set_yticks(range(k), class_titles, fontsize=8)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(name, fontsize=10)
        bar = fig.colorbar(shown, ax=ax, shrink=0.8)
        bar.set_label(unit, fontsize=8)
        if fmt == "d":
            bar.locator = MaxNLocator(integer=True)
            bar.update_ticks()
    fig.suptitle(title, fontsize=11)
    return fig


def distributions_figure(groups: Mapping[str, Mapping[str, Sequence[float]]], title: str) -> Figure:
    """Box plots of CC and KL per group (``{group title: {"cc": [...], "kl": [...]}}``, " · " in a title breaks
    the tick label), every image drawn as a point over its box, n per group in the tick labels. Raises ValueError
    when there is no group."""
    from matplotlib.figure import Figure

    if not groups:
        raise ValueError(f"{title}: no scores to draw")
    names = list(groups)
    ticks = ["\n".join([*name.split(" · "), f"(n={len(groups[name]['cc'])})"]) for name in names]
    fig = Figure(figsize=(max(9.0, 1.3 * len(names) + 2), 7.5), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    rng = np.random.default_rng(0)
    for ax, (key, label) in zip(axes, (("cc", CC_LABEL), ("kl", KL_LABEL)), strict=True):
        data = [np.asarray(groups[name][key], dtype=float) for name in names]
        ax.boxplot(data, showfliers=False, widths=0.5)
        for i, values in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=9, alpha=0.6, color="tab:blue", lw=0)
        ax.set_ylabel(label, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[1].set_xticks(range(1, len(names) + 1), ticks, fontsize=8)
    axes[1].set_xlabel("dataset · class (box: quartiles, whiskers: 1.5 IQR, dots: images)")
    fig.suptitle(title, fontsize=11)
    return fig


def curves_figure(stages: Sequence[StageLog], title: str) -> Figure:
    """Figures 3–4 of the paper: per stage, training and validation loss per epoch (left axis), the learning rate
    (right axis, log scale) and the marked checkpoints (the one handed to the next stage, the one evaluated).
    Raises ValueError when no stage is given."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    if not stages:
        raise ValueError(f"{title}: no training log")
    fig = Figure(figsize=(5.2 * len(stages) + 1, 5.4), layout="constrained")
    axes = fig.subplots(1, len(stages), squeeze=False)[0]
    for ax, stage in zip(axes, stages, strict=True):
        lines = []
        for values, name, style in ((stage.train_loss, "train loss", "o-"), (stage.val_loss, "val loss", "s-")):
            if np.isfinite(values).any():
                lines += ax.plot(stage.epochs, values, style, ms=4, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (weighted sum of the terms, unitless)", fontsize=9)
        ax.set_title(f"stage {stage.name} of run {stage.run}", fontsize=10)
        ax.grid(alpha=0.3)
        if np.isfinite(stage.lr).any():
            lr_ax = ax.twinx()
            lines += lr_ax.step(stage.epochs, stage.lr, "--", where="post", color="tab:gray", label="learning rate")
            lr_ax.set_yscale("log")
            lr_ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.0e}"))  # no mathtext: faster
            lr_ax.yaxis.set_minor_formatter(NullFormatter())
            lr_ax.set_ylabel("learning rate (log scale)", fontsize=9)
        for mark in stage.marks:
            lines.append(
                ax.axvline(mark.epoch, color=mark.color, ls=":", lw=2, label=f"{mark.label} (epoch {mark.epoch})")
            )
        ax.legend(handles=lines, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2)
        if len(stage.epochs):
            ax.set_xticks(stage.epochs)
    fig.suptitle(title, fontsize=11)
    return fig
