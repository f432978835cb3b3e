"""Best-checkpoint hand-off: records the best (by the monitored validation loss) and last checkpoints of a
stage in a small JSON file, so the next stage (or a person) can pick them up."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Checkpoint, ModelCheckpoint
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


class BestCheckpointHandoff(Checkpoint):
    """Writes :func:`best_checkpoint` to ``path`` (default: the stage folder's ``best_checkpoint.json``,
    :func:`umsi.runs.best_checkpoint_file` of the trainer's ``default_root_dir``, which
    :func:`umsi.runs.best_checkpoint` reads) after every validation, every training epoch and at the end of
    fitting, each time after the ``ModelCheckpoint`` callbacks have saved (and deleted what they replace), so the
    file never names a checkpoint that is gone, even when the run is killed between two epochs.

    ``ModelCheckpoint`` saves in ``on_train_epoch_end`` (one validation per epoch) or ``on_validation_end``.
    Lightning calls ``on_train_epoch_end`` of the checkpoint callbacks (``Checkpoint`` subclasses) after every
    other callback's, and it calls hooks in the order of ``trainer.callbacks``, where it moves the checkpoint
    callbacks to the end. So this is a ``Checkpoint`` (it saves no model itself) and :meth:`setup` moves it behind
    the last ``ModelCheckpoint``."""

    def __init__(self, path: str | None = None) -> None:
        self.path = Path(path) if path is not None else None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        callbacks = [c for c in trainer.callbacks if c is not self]
        last_checkpoint = max((i for i, c in enumerate(callbacks) if isinstance(c, ModelCheckpoint)), default=-1)
        # a new list: the hook loop that is calling this one goes on over the old list unchanged
        trainer.callbacks = [*callbacks[: last_checkpoint + 1], self, *callbacks[last_checkpoint + 1 :]]

    @rank_zero_only
    def _write(self, trainer: pl.Trainer) -> None:
        if trainer.sanity_checking or not isinstance(trainer.checkpoint_callback, ModelCheckpoint):
            return
        write_json(self.path or runs.best_checkpoint_file(trainer.default_root_dir), best_checkpoint(trainer))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer)  # ModelCheckpoint(save_on_train_epoch_end=True) saves here

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer)
