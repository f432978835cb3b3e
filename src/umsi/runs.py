"""The run folder ``umsi-train`` writes, and the one place that knows its layout.

A pipeline run (``stage=pipeline``, what ``make train`` runs)::

    outputs/<date>/<time>/              the run folder
        summary.json                    the final evaluation (training.runner.run)
        .hydra/  train.log              Hydra's own files
        pretrain/                       one stage folder per stage, in the order of STAGES
            config.yaml                 the stage's resolved config
            split.json                  its train/val file lists (umsi.data.splits)
            csv/metrics.csv             its epoch log (Lightning's CSVLogger)
            checkpoints/*.ckpt          epoch*.ckpt (the best ones) and last.ckpt
            best_checkpoint.json        {best_model_path, best_model_score, monitor, last_model_path}
        finetune/ ...

A single-stage run (``stage=pretrain`` or ``stage=finetune``) is its own stage folder: the files of a stage folder
lie in the run folder itself, next to ``summary.json``.

Nothing here imports torch: the functions read small text files only. Errors a user can fix are
:class:`NotARunError` (one line naming the folder and what was expected).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from umsi.errors import MissingPathError

log = logging.getLogger(__name__)

STAGES = ("pretrain", "finetune")  # the pipeline's stage folders, in the order they run
CONFIG_FILE = "config.yaml"
SPLIT_FILE = "split.json"
CSV_LOG = Path("csv") / "metrics.csv"
CHECKPOINTS_DIR = "checkpoints"
LAST_CHECKPOINT_FILE = "last.ckpt"
BEST_CHECKPOINT_FILE = "best_checkpoint.json"
SUMMARY_FILE = "summary.json"
CHECKPOINT_SUFFIX = ".ckpt"
HYDRA_DIR = ".hydra"  # Hydra's config.yaml, overrides.yaml and hydra.yaml of the run
TRAIN_LOG = "train.log"


class NotARunError(MissingPathError):
    """A folder given as a model is not a ``umsi-train`` run or stage folder (or has no checkpoint yet)."""

    kind = "not a run folder"


# ----------------------------------------------------------------------------------------- where things are


def stage_of(checkpoint: str | Path) -> Path | None:
    """The stage folder of a checkpoint written by training (``<stage>/checkpoints/x.ckpt`` → ``<stage>``);
    ``None`` for a file anywhere else (converted official weights, a copied file)."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS_DIR else None


def stage_of_log(csv_file: str | Path) -> Path:
    """The stage folder of an epoch log (``<stage>/csv/metrics.csv`` → ``<stage>``)."""
    return Path(csv_file).parent.parent


def run_of(stage_dir: str | Path) -> Path:
    """The run folder of a stage folder: its parent for a pipeline stage (``<run>/pretrain``), else itself."""
    stage_dir = Path(stage_dir)
    return stage_dir.parent if stage_dir.name in STAGES else stage_dir


def stage_dirs(run: str | Path, with_file: str | Path = CSV_LOG) -> list[Path]:
    """The stage folders of a run that hold ``with_file``, in the order the stages ran: ``pretrain/``,
    ``finetune/`` of a pipeline, or the run folder itself for a single-stage run; [] when none has it."""
    run = Path(run)
    stages = [run / s for s in STAGES if (run / s / with_file).exists()]
    if stages:
        return stages
    return [run] if (run / with_file).exists() else []


def config_file(stage_dir: str | Path) -> Path:
    """``<stage>/config.yaml``: the stage's resolved config."""
    return Path(stage_dir) / CONFIG_FILE


def split_file(stage_dir: str | Path) -> Path:
    """``<stage>/split.json``: the stage's recorded train/val file lists (read with :mod:`umsi.data.splits`)."""
    return Path(stage_dir) / SPLIT_FILE


def csv_log(stage_dir: str | Path) -> Path:
    """``<stage>/csv/metrics.csv``: the stage's epoch log."""
    return Path(stage_dir) / CSV_LOG


def checkpoints_dir(stage_dir: str | Path) -> Path:
    """``<stage>/checkpoints``."""
    return Path(stage_dir) / CHECKPOINTS_DIR


def last_checkpoint(stage_dir: str | Path) -> Path:
    """``<stage>/checkpoints/last.ckpt`` (it may not exist)."""
    return checkpoints_dir(stage_dir) / LAST_CHECKPOINT_FILE


def best_checkpoint_file(stage_dir: str | Path) -> Path:
    """``<stage>/best_checkpoint.json`` (written by :class:`umsi.callbacks.BestCheckpointHandoff`)."""
    return Path(stage_dir) / BEST_CHECKPOINT_FILE


def summary_file(run: str | Path) -> Path:
    """``<run>/summary.json``."""
    return Path(run) / SUMMARY_FILE


def hydra_file(run: str | Path, name: str) -> Path:
    """``<run>/.hydra/<name>`` (``config.yaml``, ``overrides.yaml``, ``hydra.yaml``): what Hydra recorded."""
    return Path(run) / HYDRA_DIR / name


def train_log(run: str | Path) -> Path:
    """``<run>/train.log``: the run's text log."""
    return Path(run) / TRAIN_LOG


def checkpoint_label(checkpoint: str | Path) -> str:
    """A short name for a checkpoint: ``<run time>/<stage>`` for ``<run>/<stage>/checkpoints/x.ckpt``, else
    the file's stem."""
    checkpoint = Path(checkpoint)
    stage = stage_of(checkpoint)
    return f"{stage.parent.name}/{stage.name}" if stage is not None else checkpoint.stem


# ------------------------------------------------------------------------------------------------- reading


def stage_config(stage_dir: str | Path | None) -> dict[str, Any]:
    """A stage's resolved ``config.yaml`` as a plain dict; {} when there is none (``stage_dir`` None included)."""
    if stage_dir is None:
        return {}
    path = config_file(stage_dir)
    if not path.is_file():
        return {}
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)  # type: ignore[return-value]


def checkpoint_config(checkpoint: str | Path) -> dict[str, Any]:
    """The ``config.yaml`` of the stage that wrote ``checkpoint`` (``<stage>/checkpoints/x.ckpt``); {} for a file
    outside a run folder."""
    return stage_config(stage_of(checkpoint))


def read_summary(run: str | Path) -> dict[str, Any] | None:
    """``<run>/summary.json`` as a dict; ``None`` when absent or unreadable (a warning names the file)."""
    path = summary_file(run)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        log.warning("cannot read %s: %s", path, err)
        return None
    return data if isinstance(data, dict) else None


def _finite(value: str | None) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def epoch_log(path: str | Path) -> dict[int, dict[str, float]]:
    """A stage's epoch log: ``{epoch: {column: value}}`` from a Lightning ``CSVLogger`` file (``path``: the file or
    its stage folder), epochs 0-based as logged. Rows are grouped by their ``epoch`` column and the last finite value
    logged for an epoch wins (a resumed run re-logs its epochs); empty and non-finite cells are left out.

    Raises ``ValueError`` naming the file when it has no ``epoch`` column, ``OSError`` when it cannot be read."""
    path = Path(path)
    if path.is_dir():
        path = csv_log(path)
    per_epoch: dict[int, dict[str, float]] = {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "epoch" not in reader.fieldnames:
            raise ValueError(f"{path}: not a Lightning CSV log (no 'epoch' column)")
        for row in reader:
            epoch = _finite(row.get("epoch"))
            if epoch is None:
                continue
            values = per_epoch.setdefault(int(epoch), {})
            values.update({k: v for k, raw in row.items() if k and k != "epoch" and (v := _finite(raw)) is not None})
    return {epoch: per_epoch[epoch] for epoch in sorted(per_epoch)}


# ------------------------------------------------------------------------------------------ the run's model


def _recorded_path(value: Any, stage_dir: Path) -> Path | None:
    """A checkpoint path recorded by training: as written (relative to where training ran), else the file of that
    name in the stage's ``checkpoints/`` (a moved or copied run folder)."""
    if not value:
        return None
    path = Path(str(value))
    if path.is_file():
        return path
    moved = checkpoints_dir(stage_dir) / path.name
    return moved if moved.is_file() else None


def stage_best_checkpoint(stage_dir: str | Path) -> Path | None:
    """The best checkpoint of a stage folder: ``best_checkpoint.json``'s best (else last) model; without that file
    the newest ``epoch*.ckpt``, else ``last.ckpt``; ``None`` when the stage has no checkpoint."""
    stage_dir = Path(stage_dir)
    record = best_checkpoint_file(stage_dir)
    if record.is_file():
        try:
            info = json.loads(record.read_text())
        except (OSError, ValueError) as err:
            log.warning("cannot read %s: %s", record, err)
            info = {}
        for key in ("best_model_path", "last_model_path"):
            found = _recorded_path(info.get(key) if isinstance(info, dict) else None, stage_dir)
            if found is not None:
                return found
    folder = checkpoints_dir(stage_dir)
    epochs = sorted(folder.glob(f"epoch*{CHECKPOINT_SUFFIX}"), key=lambda p: p.stat().st_mtime)
    if epochs:
        return epochs[-1]
    last = last_checkpoint(stage_dir)
    return last if last.is_file() else None


def is_stage_dir(path: str | Path) -> bool:
    """A folder training wrote a stage into: a ``config.yaml`` next to ``checkpoints/`` or ``best_checkpoint.json``."""
    path = Path(path)
    return config_file(path).is_file() and (checkpoints_dir(path).is_dir() or best_checkpoint_file(path).is_file())


def best_checkpoint(folder: str | Path) -> Path:
    """A run or stage folder as a model: the best checkpoint of the run's last stage that has one (a pipeline's
    finetuning, then its pretraining), or of the stage folder given (see :func:`stage_best_checkpoint`).

    Raises :class:`NotARunError` naming the folder and what was expected when it is not a run or stage folder, or
    when none of its stages has a checkpoint yet."""
    folder = Path(folder)
    expected = (
        "a umsi-train run folder (outputs/<date>/<time>, with pretrain/ and finetune/ or its own checkpoints/) or "
        "one of its stage folders, or a checkpoint file"
    )
    if not folder.is_dir():
        raise NotARunError(f"{folder}: no such folder; expected {expected}")
    stages = [folder / s for s in STAGES if is_stage_dir(folder / s)]
    if not stages and is_stage_dir(folder):
        stages = [folder]
    if not stages:
        raise NotARunError(f"{folder} is not a run folder; expected {expected}")
    for stage in reversed(stages):
        found = stage_best_checkpoint(stage)
        if found is not None:
            return found
    raise NotARunError(f"{folder}: no checkpoint in {', '.join(str(checkpoints_dir(s)) for s in stages)} yet")


def finished_runs(outputs: str | Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """``(run folder, summary)`` of the finished runs under ``outputs`` (``<date>/<time>/summary.json``), newest
    summary first."""
    summaries = sorted(Path(outputs).glob(f"*/*/{SUMMARY_FILE}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in summaries:
        summary = read_summary(path.parent)
        if summary is not None:
            yield path.parent, summary


def latest_checkpoint(outputs: str | Path) -> Path:
    """The final model of the newest ``umsi-train`` run under ``outputs``: the best finetuned checkpoint of the
    newest pipeline run (what ``make train`` runs), or, when there is no pipeline run, the evaluated checkpoint of
    the newest single-stage run. Raises :class:`~umsi.errors.MissingPathError` (a ``FileNotFoundError``) when there
    is none: the tools print it as one line and exit 2."""
    runs = [summary for _, summary in finished_runs(outputs)]
    pipeline = [(s.get("stages") or {}).get("finetune_best") for s in runs]
    single = [(s.get("checkpoint") or {}).get("path") for s in runs]
    for candidate in [*pipeline, *single]:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise MissingPathError(
        f"no finished umsi-train run with a checkpoint under {outputs}; run `make train` first or pass "
        "checkpoints=[path/to/model.ckpt]"
    )
