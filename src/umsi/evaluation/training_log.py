"""The training curves' data, read from a run's own CSV log (``<run>/<stage>/csv/metrics.csv``, Lightning's
``CSVLogger``), so the report needs no W&B.

Per epoch: ``train/loss_epoch`` (the mean training loss), ``val/loss`` and ``lr`` (logged by ``StepLRDecay``).
Checkpoints are marked at their epoch: the one a stage handed to the next (the next stage's ``init_ckpt`` in its
``config.yaml``) and the one being evaluated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from umsi import runs

TRAIN_LOSS, VAL_LOSS, LR = "train/loss_epoch", "val/loss", "lr"
_EPOCH_IN_NAME = re.compile(r"epoch[=_-]?(\d+)")


@dataclass(frozen=True)
class Mark:
    """A checkpoint drawn on the curves at ``epoch`` (0-based, as logged)."""

    epoch: int
    label: str
    color: str


@dataclass
class StageLog:
    """One stage's per-epoch values (E,) (NaN where an epoch logged none) and its checkpoint marks."""

    name: str
    csv: Path
    epochs: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    lr: np.ndarray
    marks: list[Mark] = field(default_factory=list)
    run: str = ""  # the run folder as <date>/<time>


def read_stage_log(path: Path, name: str | None = None) -> StageLog:
    """Per-epoch train loss, validation loss and learning rate from a Lightning CSV log. Rows are grouped by their
    ``epoch`` column; the last value logged for an epoch wins (a resumed run re-logs its epochs). Raises
    ValueError naming the file when it has no ``epoch`` column or no row."""
    per_epoch = runs.epoch_log(path)
    if not per_epoch:
        raise ValueError(f"{path}: the log has no epoch rows yet")
    epochs = np.array(list(per_epoch))

    def column(key: str) -> np.ndarray:
        return np.array([per_epoch[e].get(key, np.nan) for e in epochs], dtype=float)

    return StageLog(
        name or runs.stage_of_log(path).name, path, epochs, column(TRAIN_LOSS), column(VAL_LOSS), column(LR)
    )


def checkpoint_epoch(checkpoint: Path, log: StageLog) -> int | None:
    """The epoch a checkpoint of this stage was saved at: from its name (``epoch004-…``), or the last logged epoch
    for ``last.ckpt``; None when neither tells."""
    found = _EPOCH_IN_NAME.search(checkpoint.stem)
    if found:
        return int(found.group(1))
    return int(log.epochs[-1]) if checkpoint.stem == "last" else None


def _stage_dir(checkpoint: Path) -> Path | None:
    """``<stage>/checkpoints/x.ckpt`` → ``<stage>`` when it has a CSV log."""
    stage = runs.stage_of(checkpoint) or checkpoint.parent
    return stage if runs.csv_log(stage).is_file() else None


def _init_checkpoint(stage: Path) -> Path | None:
    value = runs.stage_config(stage).get("init_ckpt")
    return Path(value) if value else None


def stage_logs(checkpoint: str | Path) -> list[StageLog]:
    """The CSV logs of the run a checkpoint comes from, in training order: for a pipeline checkpoint
    (``<run>/finetune/checkpoints/…``) every stage folder of that run, else the checkpoint's own stage. Marks the
    checkpoint each stage handed to the next and the evaluated one. [] when no log lies next to the checkpoint
    (converted official weights, a copied file)."""
    checkpoint = Path(checkpoint)
    own = _stage_dir(checkpoint)
    if own is None:
        return []
    run = runs.run_of(own)
    dirs = runs.stage_dirs(run) if run != own else [own]
    logs = []
    for stage_dir in dirs:
        name = (runs.stage_config(stage_dir).get("stage") or {}).get("name") or stage_dir.name
        logs.append(read_stage_log(runs.csv_log(stage_dir), name))
        logs[-1].run = f"{run.parent.name}/{run.name}"
    for log, stage_dir, next_dir in zip(logs, dirs, [*dirs[1:], None], strict=True):
        handed = _init_checkpoint(next_dir) if next_dir is not None else None
        if handed is not None and runs.stage_of(handed.resolve()) == stage_dir.resolve():
            epoch = checkpoint_epoch(handed, log)
            if epoch is not None:
                log.marks.append(Mark(epoch, f"handed to {next_dir.name}: {handed.name}", "tab:green"))
        if stage_dir == own:
            epoch = checkpoint_epoch(checkpoint, log)
            if epoch is not None:
                log.marks.append(Mark(epoch, f"evaluated: {checkpoint.name}", "tab:red"))
    return logs
