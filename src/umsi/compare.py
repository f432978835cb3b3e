"""``umsi-compare``: a table of local training runs (offline, no W&B needed).

Reads what ``umsi-train`` leaves in a run folder: ``.hydra/config.yaml`` and ``overrides.yaml``, ``summary.json``
(final metrics, the network's parameter count), ``train.log`` (wall time when summary.json has no
``wall_seconds``) and the last stage's ``csv/metrics.csv`` (best validation metrics per epoch, training
images/s). Writes ``compare.md``, ``compare.csv`` and, with ``--plot``, ``val_curves.png``; prints the Markdown
table.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import OmegaConf

from umsi import runs
from umsi.utils.io import atomic_write
from umsi.visualize import figure_png

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

SEARCH_LEVELS = 3  # enough for outputs/ → outputs/<date>/<time> and outputs/multirun/<date>/<time>
# best value over epochs: metric → True where higher is better
BEST_METRICS = {"val/cc": True, "val/kl": False, "val/loss": False, "val/acc": True}
FINAL_METRICS = ("cc", "kl", "acc")
PLOT_METRICS = ("val/cc", "val/loss")
# default sort direction: higher first
DESCENDING = {"cc", "acc", "best_val_cc", "best_val_acc", "epochs", "images_per_s"}
FIXED_COLUMNS = {"run", "status", "stage", "dataset", "epochs", "wall_s", "params", "images_per_s", *FINAL_METRICS}
THROUGHPUT = "perf/train_images_per_second"  # logged every epoch by callbacks.EpochThroughput
NOISE_PREFIXES = ("paths.", "hydra.")
HEADERS = {"wall_s": "wall", "images_per_s": "images/s"}  # Markdown headers that differ from the column name
_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


@dataclass
class RunInfo:
    """One training run: its config, overrides, final and best validation metrics and wall time."""

    path: Path
    name: str
    status: str  # "finished" (summary.json written) or "unfinished"
    stage: str  # config stage.name; "pipeline/<stage>" names the stage the best metrics come from
    config: dict[str, Any]  # dotted keys of .hydra/config.yaml, interpolations left as written
    overrides: list[str]
    choices: dict[str, str]  # config group choices (.hydra/hydra.yaml hydra.runtime.choices)
    final: dict[str, float | None]  # summary.json model.cc/kl/acc
    best: dict[str, float | None]  # best over epochs of the last stage: max val/cc, min val/kl …
    best_epoch: dict[str, int | None]
    epochs: int  # validated epochs of the last stage
    wall_seconds: float | None
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # metric → (epoch, value) per epoch
    parameters: int | None = None  # summary.json network.parameters (learnable, BN statistics not counted)
    images_per_second: float | None = None  # training images/s of the last stage's last epoch
    dataset: str | None = None  # the data config the final metrics were measured on (salicon, imp1k, …)

    def value(self, key: str) -> Any:
        """The run's value for a config key or config group (``model`` → its choice), else its override."""
        if key in self.config:
            return self.config[key]
        if key in self.choices:
            return self.choices[key]
        return _override_map(self.overrides).get(key)


# --------------------------------------------------------------------------------------------- finding runs


def is_run(path: Path) -> bool:
    """A ``umsi-train`` run folder: summary.json, or .hydra/ with a train.log or a ``task_name: train`` config."""
    if runs.summary_file(path).is_file():
        return True
    if not (path / runs.HYDRA_DIR).is_dir():
        return False
    if runs.train_log(path).is_file():
        return True
    config = _load_yaml(runs.hydra_file(path, "config.yaml"))
    return isinstance(config, dict) and config.get("task_name") == "train"


def is_sweep(path: Path) -> bool:
    """A Hydra multirun folder (``multirun.yaml`` next to job folders 0/, 1/, …)."""
    return (path / "multirun.yaml").is_file()


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run folders named by ``paths``: a run, a sweep (its jobs) or a folder searched a few levels down.

    Raises FileNotFoundError naming a path that does not exist or is not a folder."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise FileNotFoundError(f"{raw}: no such folder" if not path.exists() else f"{raw}: not a folder")
        if is_run(path):
            found.append(path)
        elif is_sweep(path):
            found += _sweep_jobs(path)
        else:
            found += _search(path, SEARCH_LEVELS)
    unique: dict[Path, Path] = {}
    for run in found:
        unique.setdefault(run.resolve(), run)
    return list(unique.values())


def _subdirs(path: Path) -> list[Path]:
    try:
        children = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return []
    return sorted(children, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def _sweep_jobs(path: Path) -> list[Path]:
    return [job for job in _subdirs(path) if is_run(job)]


def _search(folder: Path, levels: int) -> list[Path]:
    runs: list[Path] = []
    for child in _subdirs(folder):
        if is_run(child):
            runs.append(child)
        elif is_sweep(child):
            runs += _sweep_jobs(child)
        elif levels > 1:
            runs += _search(child, levels - 1)
    return runs


# ---------------------------------------------------------------------------------------------- reading runs


def load_runs(paths: Sequence[Path]) -> list[RunInfo]:
    """Load runs, each named by its path relative to the runs' common parent."""
    resolved = [p.resolve() for p in paths]
    if not resolved:
        return []
    root = Path(os.path.commonpath(resolved))
    if root in resolved:  # a single run (or one run containing the others): name it from its parent
        root = root.parent
    return [load_run(p, root) for p in resolved]


def load_run(path: str | Path, root: str | Path | None = None) -> RunInfo:
    """Read one run folder; ``root`` (default: its parent) is what its name is relative to."""
    path = Path(path).resolve()
    name = os.path.relpath(path, Path(root).resolve()) if root is not None else path.name
    stage_dirs = runs.stage_dirs(path)
    config_file = runs.hydra_file(path, "config.yaml")
    if not config_file.is_file() and stage_dirs:
        config_file = runs.config_file(stage_dirs[-1])
    raw_config = _load_yaml(config_file)
    config = _flatten(raw_config) if isinstance(raw_config, dict) else {}
    overrides = _load_yaml(runs.hydra_file(path, "overrides.yaml"))
    hydra_cfg = _load_yaml(runs.hydra_file(path, "hydra.yaml"))
    choices = _dig(hydra_cfg, "hydra", "runtime", "choices")
    summary = runs.read_summary(path)

    rows = _val_rows(runs.csv_log(stage_dirs[-1])) if stage_dirs else []
    speed = _last_value(runs.csv_log(stage_dirs[-1]), THROUGHPUT) if stage_dirs else None
    best: dict[str, float | None] = {}
    best_epoch: dict[str, int | None] = {}
    for metric, higher in BEST_METRICS.items():
        points = [(row["epoch"], row[metric]) for row in rows if row.get(metric) is not None]
        if points:
            epoch, value = (max if higher else min)(points, key=lambda p: p[1])
            best[metric], best_epoch[metric] = value, epoch
        else:
            best[metric], best_epoch[metric] = None, None
    curves = {m: [(row["epoch"], row[m]) for row in rows if row.get(m) is not None] for m in PLOT_METRICS}

    model = _dig(summary, "model") or {}
    stage = str(config.get("stage.name", ""))
    if stage_dirs and stage_dirs[-1] != path:
        stage = f"{stage or 'pipeline'}/{stage_dirs[-1].name}"
    wall = (summary or {}).get("wall_seconds")
    return RunInfo(
        path=path,
        name=name,
        status="finished" if summary is not None else "unfinished",
        stage=stage,
        config=config,
        overrides=[str(o) for o in overrides] if isinstance(overrides, list) else [],
        choices={str(k): str(v) for k, v in choices.items()} if isinstance(choices, dict) else {},
        final={k: _number(model.get(k)) for k in FINAL_METRICS},
        best=best,
        best_epoch=best_epoch,
        epochs=len({row["epoch"] for row in rows}),
        wall_seconds=_number(wall) if wall is not None else _log_seconds(runs.train_log(path)),
        curves=curves,
        parameters=_integer(_dig(summary, "network", "parameters")),
        images_per_second=speed,
        dataset=str(choices["data"]) if isinstance(choices, dict) and choices.get("data") else None,
    )


def _load_yaml(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as err:  # a half-written or hand-edited file: report and go on without it
        log.warning("cannot read %s: %s", path, err)
        return None


def _dig(tree: Any, *keys: str) -> Any:
    for key in keys:
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _integer(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _last_value(metrics_csv: Path, column: str) -> float | None:
    """The last value logged in ``column`` of a stage's epoch log (:func:`umsi.runs.epoch_log`; None when never
    logged)."""
    try:
        per_epoch = runs.epoch_log(metrics_csv)
    except (OSError, ValueError) as err:
        log.warning("cannot read %s: %s", metrics_csv, err)
        return None
    values = [row[column] for row in per_epoch.values() if column in row]
    return values[-1] if values else None


def _val_rows(metrics_csv: Path) -> list[dict[str, Any]]:
    """Validation epochs (val/loss logged) of a stage's epoch log (:func:`umsi.runs.epoch_log`): the ``val/*``
    values and the epoch, one row per epoch."""
    try:
        per_epoch = runs.epoch_log(metrics_csv)
    except (OSError, ValueError) as err:
        log.warning("cannot read %s: %s", metrics_csv, err)
        return []
    return [
        {**{k: v for k, v in values.items() if k.startswith("val/")}, "epoch": epoch}
        for epoch, values in per_epoch.items()
        if "val/loss" in values
    ]


def _log_seconds(train_log: Path) -> float | None:
    """Seconds between the first and the last timestamped line of train.log."""
    if not train_log.is_file():
        return None
    stamps = [m.group(1) for line in train_log.read_text(errors="replace").splitlines() if (m := _LOG_TIME.match(line))]
    if not stamps:
        return None
    first, last = (datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in (stamps[0], stamps[-1]))
    return (last - first).total_seconds()


# ------------------------------------------------------------------------------------------ comparing runs


def _override_map(overrides: Iterable[str]) -> dict[str, str]:
    """``key=value`` overrides as a dict; ``+key``/``++key`` lose their prefix, ``~key`` maps to None."""
    result: dict[str, Any] = {}
    for item in overrides:
        key, _, value = item.partition("=")
        key = key.strip().lstrip("+")
        if key.startswith("~"):
            result[key[1:]] = None
        elif key:
            result[key] = value
    return result


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _is_noise(run: RunInfo, key: str, value: Any) -> bool:
    """Paths and Hydra settings, and values naming the run's own folder (output dirs, resume checkpoints)."""
    if key.startswith(NOISE_PREFIXES) or key in ("paths", "hydra"):
        return True
    return value is not None and str(run.path) in _canonical(value)


def differing_keys(runs: Sequence[RunInfo]) -> list[str]:
    """Config keys whose values differ between runs, noise left out.

    The command-line override keys are used when any of them differs (a sweep's parameters, ``model=…``);
    otherwise all config keys, with seed-like keys left out too."""
    if len(runs) < 2:
        return []

    def differs(key: str) -> bool:
        values = [run.value(key) for run in runs]
        if any(_is_noise(run, key, v) for run, v in zip(runs, values, strict=True)):
            return False
        return len({_canonical(v) for v in values}) > 1

    override_keys = list(dict.fromkeys(k for run in runs for k in _override_map(run.overrides)))
    keys = [k for k in override_keys if differs(k)]
    if keys:
        return keys
    config_keys = list(dict.fromkeys(k for run in runs for k in run.config))
    return [k for k in config_keys if not k.rsplit(".", 1)[-1].endswith("seed") and differs(k)]


def comparison_table(runs: Sequence[RunInfo], keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One row per run: name, the differing keys, status, stage, epochs, wall time, final and best metrics."""
    keys = differing_keys(runs) if keys is None else keys
    keys = [k for k in keys if k not in FIXED_COLUMNS]  # e.g. stage=…: the stage column shows it
    table = []
    for run in runs:
        row: dict[str, Any] = {"run": run.name}
        row |= {key: run.value(key) for key in keys}
        row |= {"status": run.status, "stage": run.stage, "epochs": run.epochs, "wall_s": run.wall_seconds}
        row |= {"params": run.parameters, "images_per_s": run.images_per_second, "dataset": run.dataset}
        row |= {k: run.final[k] for k in FINAL_METRICS}
        for metric in BEST_METRICS:
            column = "best_" + metric.replace("/", "_")
            row[column], row[column + "_epoch"] = run.best[metric], run.best_epoch[metric]
        table.append(row)
    return table


def sort_table(table: list[dict[str, Any]], column: str, reverse: bool = False) -> list[dict[str, Any]]:
    """Sort by ``column`` (higher first for cc/acc/epochs, lower first otherwise; ``reverse`` flips); empty last."""
    descending = (column in DESCENDING) != reverse
    numbers, texts, empty = [], [], []
    for row in table:
        value = row.get(column)
        if value is None:
            empty.append(row)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            numbers.append(row)
        else:
            texts.append(row)
    numbers.sort(key=lambda r: r[column], reverse=descending)
    texts.sort(key=lambda r: _cell(r[column]), reverse=descending)
    return numbers + texts + empty


def sort_column(name: str) -> str:
    """``val/cc`` or ``best val/cc`` → ``best_val_cc``; other names as given."""
    name = name.strip().replace(" ", "_").replace("/", "_")
    return "best_" + name if name.startswith("val_") else name


# ------------------------------------------------------------------------------------------------- writing


def _cell(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, list | dict):
        return _canonical(value)
    return str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def markdown_table(table: Sequence[dict[str, Any]]) -> str:
    """A GitHub table: numbers with 3 decimals, best values as ``value @epoch``."""
    if not table:
        return ""
    columns = [c for c in table[0] if not c.endswith("_epoch")]
    header = [
        HEADERS.get(c) or (c.replace("best_val_", "best val/") if c.startswith("best_val_") else c) for c in columns
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in table:
        cells = []
        for c in columns:
            if c == "wall_s":
                text = _duration(row[c])
            elif c == "params" and row[c] is not None:
                text = f"{row[c] / 1e6:.2f} M"
            elif c == "images_per_s" and row[c] is not None:
                text = f"{row[c]:.3g}"
            elif c.startswith("best_") and row[c] is not None:
                text = f"{_cell(row[c])} @{row[c + '_epoch']}"
            else:
                text = _cell(row[c])
            cells.append(text.replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_text(table: Sequence[dict[str, Any]]) -> str:
    """The table as CSV: one row per run, full precision, empty cells for missing values."""
    buffer = io.StringIO()
    if table:
        writer = csv.DictWriter(buffer, fieldnames=list(table[0]), lineterminator="\n")
        writer.writeheader()
        for row in table:
            writer.writerow(
                {k: "" if v is None else _canonical(v) if isinstance(v, list | dict) else v for k, v in row.items()}
            )
    return buffer.getvalue()


def write_markdown(path: str | Path, table: Sequence[dict[str, Any]]) -> Path:
    """Atomically write the Markdown table."""
    text = markdown_table(table)
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_csv(path: str | Path, table: Sequence[dict[str, Any]]) -> Path:
    """Atomically write the CSV table."""
    text = csv_text(table)
    return atomic_write(path, lambda tmp: tmp.write_text(text))


# ------------------------------------------------------------------------------------------------ plotting


def plot_curves(runs: Sequence[RunInfo], metrics: Sequence[str] = PLOT_METRICS) -> Figure:
    """A matplotlib figure (560 px per metric at 100 dpi): one panel per metric with each run's value per epoch of
    its last stage (markers on the validated epochs), and the run names in one legend below, drawn as the
    evaluation report draws its charts."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(5.6 * len(metrics), 3.6 + 0.22 * len(runs)), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    handles: list[Any] = []
    for ax, metric in zip(axes, metrics, strict=True):
        for i, run in enumerate(runs):
            curve = np.array(run.curves.get(metric, []), float).reshape(-1, 2)
            (line,) = ax.plot(curve[:, 0], curve[:, 1], "o-", ms=4, color=f"C{i % 10}", label=run.name)
            if ax is axes[0]:
                handles.append(line)
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("epoch (0-based)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.legend(handles=handles, loc="outside lower center", fontsize=8, ncols=1)
    return fig


def write_comparison(
    paths: Sequence[str | Path],
    out_dir: str | Path | None = None,
    sort: str = "cc",
    reverse: bool = False,
    plot: bool = False,
) -> tuple[list[dict[str, Any]], Path]:
    """Find the runs under ``paths``, build the comparison table sorted by ``sort`` (a column name or alias, see
    :func:`sort_column`), and write ``compare.md``, ``compare.csv`` (and ``val_curves.png`` with ``plot``) to
    ``out_dir`` (default ``outputs/compare/<date>-<time>``). Returns (table, out_dir).

    Raises FileNotFoundError for a missing path or when no run is found, ValueError for an unknown sort column.
    """
    found = find_runs(paths)
    if not found:
        raise FileNotFoundError(f"no runs found under {' '.join(map(str, paths))}")
    runs = load_runs(found)
    table = comparison_table(runs)
    column = sort_column(sort)
    if column not in table[0]:
        raise ValueError(f"--sort {sort}: not a column; choose one of {', '.join(table[0])}")
    table = sort_table(table, column, reverse)
    out = Path(out_dir) if out_dir else Path("outputs", "compare", datetime.now().strftime("%Y-%m-%d-%H-%M-%S"))
    write_markdown(out / "compare.md", table)
    write_csv(out / "compare.csv", table)
    if plot:
        order = {row["run"]: i for i, row in enumerate(table)}
        png = figure_png(plot_curves(sorted(runs, key=lambda r: order[r.name])))
        atomic_write(out / "val_curves.png", lambda tmp: tmp.write_bytes(png))
    return table, out
