"""Training speed per epoch: wall time and images per second, logged as ``perf/*``."""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


class EpochThroughput(Callback):
    """Logs ``perf/epoch_seconds`` (training loop only) and ``perf/train_images_per_second`` every epoch."""

    def __init__(self) -> None:
        self._start = 0.0
        self._images = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start, self._images = time.perf_counter(), 0

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._images += int(batch["image"].shape[0])

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seconds = time.perf_counter() - self._start
        pl_module.log("perf/epoch_seconds", seconds, on_epoch=True, batch_size=1)
        pl_module.log("perf/train_images_per_second", self._images / max(seconds, 1e-9), on_epoch=True, batch_size=1)
