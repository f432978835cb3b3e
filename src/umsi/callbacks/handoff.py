"""Best-checkpoint hand-off: records the best (by the monitored validation loss) and last checkpoints of a
stage in a small JSON file, so the next stage (or a person) can pick them up."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_only

from umsi import runs
from umsi.utils.io import write_json


def best_checkpoint(trainer: pl.Trainer) -> dict[str, object]:
    """{best_model_path, best_model_score, monitor, last_model_path} of the trainer's ModelCheckpoint."""
    ckpt = trainer.checkpoint_callback
    if not isinstance(ckpt, ModelCheckpoint):
        raise RuntimeError("no ModelCheckpoint callback configured (callbacks.model_checkpoint)")
    score = ckpt.best_model_score
    return {
        "best_model_path": ckpt.best_model_path,
        "best_model_score": None if score is None else float(score),
        "monitor": ckpt.monitor,
        "last_model_path": ckpt.last_model_path,
    }


class BestCheckpointHandoff(Callback):
    """Writes :func:`best_checkpoint` to ``path`` after every validation and at the end of fitting; by default the
    stage folder's ``best_checkpoint.json`` (:func:`umsi.runs.best_checkpoint_file` of the trainer's
    ``default_root_dir``, the stage's ``paths.output_dir``), where :func:`umsi.runs.best_checkpoint` reads it."""

    def __init__(self, path: str | None = None) -> None:
        self.path = Path(path) if path is not None else None

    @rank_zero_only
    def _write(self, trainer: pl.Trainer) -> None:
        if trainer.sanity_checking or not isinstance(trainer.checkpoint_callback, ModelCheckpoint):
            return
        write_json(self.path or runs.best_checkpoint_file(trainer.default_root_dir), best_checkpoint(trainer))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer)
