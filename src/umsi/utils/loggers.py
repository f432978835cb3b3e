"""Experiment loggers: Weights & Biases online when an API key is available, offline otherwise; a CSV logger that
keeps a resumed run's history."""

from __future__ import annotations

import csv
import logging
import netrc
import os
from pathlib import Path
from typing import Any

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from umsi.utils.io import atomic_write

log = logging.getLogger(__name__)
WANDB_HOST = "api.wandb.ai"


def wandb_api_key_present() -> bool:
    """True when ``WANDB_API_KEY`` is set or ``~/.netrc`` has W&B credentials (``wandb login``)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(WANDB_HOST) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_mode(requested: str | None = None) -> str:
    """``requested`` if given, else ``$WANDB_MODE``, else online with an API key and offline without."""
    return requested or os.environ.get("WANDB_MODE") or ("online" if wandb_api_key_present() else "offline")


def make_wandb_logger(save_dir: str, mode: str | None = None, **kwargs: Any) -> WandbLogger:
    """A ``WandbLogger`` whose run files live under ``save_dir/wandb``; offline runs can be uploaded later
    with ``wandb sync <save_dir>/wandb/offline-run-*``."""
    mode = wandb_mode(mode)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    if mode == "offline":
        log.info("W&B offline (no API key): run files in %s/wandb; upload later with `wandb sync`", save_dir)
    return WandbLogger(save_dir=save_dir, mode=mode, **kwargs)


class _HistoryWriter(ExperimentWriter):
    """Lightning's CSV writer, which deletes an existing ``metrics.csv`` when it starts. With ``resume_step`` it
    keeps the rows logged before that step instead (the steps from there on are trained again and logged anew)
    and its header, and Lightning's own writer appends to the file (rewriting the header when a new metric
    appears)."""

    def __init__(self, log_dir: str, resume_step: int | None) -> None:
        self.resume_step = resume_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if self.resume_step is None or not self._fs.isfile(self.metrics_file_path):
            super()._check_log_dir_exists()
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            kept = [row for row in reader if int(float(row.get("step") or 0)) < self.resume_step]
            self.metrics_keys = list(reader.fieldnames or [])

        def rewrite(tmp: Path) -> None:
            with tmp.open("w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows(kept)

        atomic_write(Path(self.metrics_file_path), rewrite)


class CSVHistoryLogger(CSVLogger):
    """``pytorch_lightning.loggers.CSVLogger`` (``<save_dir>/<name>/<version>/metrics.csv``) that continues the
    file of a resumed run, as W&B continues a run with the same id: ``resume_step`` (the resumed checkpoint's
    ``global_step``, set by ``umsi-train``) keeps the rows logged before that step. ``None``: a fresh file, as
    Lightning does."""

    def __init__(self, *args: Any, resume_step: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _HistoryWriter(self.log_dir, self.resume_step)
        return self._experiment
