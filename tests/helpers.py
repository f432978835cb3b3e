"""Test-only callbacks, importable by Hydra ``_target_`` (pytest puts tests/ on sys.path)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback


class ZeroOutputAfterFirstEpoch(Callback):
    """Zeroes the final 1×1 conv after epoch 0, so every later epoch predicts all-zero maps and has a worse
    validation loss: the best checkpoint is then epoch 0 and differs from the last one."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch >= 1:
            with torch.no_grad():
                pl_module.model.decoder.head.weight.zero_()
                pl_module.model.decoder.head.bias.fill_(-1.0)


class RecordBatches(Callback):
    """Records the image paths of every training batch, per epoch."""

    def __init__(self) -> None:
        self.paths: dict[int, list[str]] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.paths.setdefault(trainer.current_epoch, []).extend(batch["path"])


class OneSecondClock(datetime):
    """Hydra's ``${now:…}`` clock stopped at one second (``monkeypatch.setattr(hydra.core.utils, "datetime", …)``):
    every run starts 'in the same second'."""

    @classmethod
    def now(cls, tz: Any = None) -> datetime:
        return datetime(2026, 1, 2, 3, 4, 5)
