"""Stop at the first non-finite training loss, naming the files of the offending batch."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message names the batch's files."""


class NonFiniteGuard(Callback):
    """Raises ``NonFiniteLossError`` when a training step's loss is NaN or ±inf. Training stops there, so nothing
    is checkpointed after the bad step: the last checkpoint written before it stays the newest (resume from it
    with ``ckpt_path=last`` once the data or the settings are fixed)."""

    def __init__(self, max_files: int = 16) -> None:
        self.max_files = max_files

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor) or bool(torch.isfinite(loss.detach()).all()):
            return
        files = [str(p) for p in (batch.get("path") or [])] if isinstance(batch, dict) else []
        shown = "\n  ".join(files[: self.max_files]) + (
            f"\n  … {len(files) - self.max_files} more" if len(files) > self.max_files else ""
        )
        last = getattr(trainer.checkpoint_callback, "last_model_path", "") or "none written yet"
        raise NonFiniteLossError(
            f"non-finite training loss ({loss.item()}) at epoch {trainer.current_epoch}, step {trainer.global_step}, "
            f"batch {batch_idx}. Files of this batch:\n  {shown or '(no paths in the batch)'}\n"
            f"Nothing was saved after this step; the last checkpoint is {last}. Check these files "
            "(umsi-data-check), lower optimizer.lr or the loss weights, then resume with ckpt_path=last."
        )
