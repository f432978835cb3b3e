"""Step learning-rate decay, as the official ``cb.step_decay``: lr(e) = lr₀ · drop^⌊(e + offset) / every⌋."""

from __future__ import annotations

import logging
import math

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

log = logging.getLogger(__name__)

# what each epoch_offset means for "decays 10 times every three epochs" (drop 0.1, epochs_drop 3)
READINGS = {1: "the official Keras step_decay helper", 0: "the paper read literally"}


class StepLRDecay(Callback):
    """Sets every parameter group's LR at the start of each training epoch (0-based epoch e) and logs it as ``lr``
    (W&B and ``csv/metrics.csv``, one value per epoch) and in the text log.

    ``epoch_offset=1`` is the official Keras helper (1e-4 for epochs 0–1, 1e-5 for 2–4, …); ``0`` decays
    exactly every ``epochs_drop`` epochs (1e-4 for epochs 0–2, 1e-5 for 3–5, …: the reproduction paper's "decays 10
    times every three epochs" read literally). Stateless in the epoch, so resumed runs continue the schedule.
    """

    def __init__(self, drop: float = 0.1, epochs_drop: int = 3, epoch_offset: int = 1) -> None:
        if epochs_drop < 1:
            raise ValueError(f"scheduler.epochs_drop must be >= 1, got {epochs_drop}")
        self.drop, self.epochs_drop, self.epoch_offset = drop, epochs_drop, epoch_offset

    def factor(self, epoch: int) -> float:
        return self.drop ** math.floor((epoch + self.epoch_offset) / self.epochs_drop)

    def describe(self) -> str:
        """One line: the rule, the first epoch it lowers the LR, and which reading of the schedule it is."""
        if self.drop == 1.0:
            return "constant lr"
        first = next(e for e in range(self.epochs_drop + abs(self.epoch_offset) + 1) if self.factor(e) != 1.0)
        reading = READINGS.get(self.epoch_offset, "")
        return (
            f"lr × {self.drop:g} every {self.epochs_drop} epochs, first changed at epoch {first} (0-based; "
            f"scheduler.epoch_offset={self.epoch_offset}{': ' + reading if reading else ''})"
        )

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        log.info("learning-rate schedule: %s", self.describe())

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        factor = self.factor(trainer.current_epoch)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * factor
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        log.info("epoch %d: lr %.3g", trainer.current_epoch, lr)
        pl_module.log("lr", lr, on_step=False, on_epoch=True, batch_size=1)
