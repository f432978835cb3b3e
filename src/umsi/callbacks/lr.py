"""Step learning-rate decay, as the official ``cb.step_decay``: lr(e) = lr₀ · drop^⌊(e + offset) / every⌋."""

from __future__ import annotations

import math

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


class StepLRDecay(Callback):
    """Sets every parameter group's LR at the start of each training epoch (0-based epoch e) and logs it.

    ``epoch_offset=1`` is the official Keras helper (1e-4 for epochs 0–1, 1e-5 for 2–4, …); ``0`` decays
    exactly every ``epochs_drop`` epochs. Stateless in the epoch, so resumed runs continue the schedule.
    """

    def __init__(self, drop: float = 0.1, epochs_drop: int = 3, epoch_offset: int = 1) -> None:
        if epochs_drop < 1:
            raise ValueError(f"scheduler.epochs_drop must be >= 1, got {epochs_drop}")
        self.drop, self.epochs_drop, self.epoch_offset = drop, epochs_drop, epoch_offset

    def factor(self, epoch: int) -> float:
        return self.drop ** math.floor((epoch + self.epoch_offset) / self.epochs_drop)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        factor = self.factor(trainer.current_epoch)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * factor
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        pl_module.log("lr", lr, on_step=False, on_epoch=True, batch_size=1)
