"""A panel of image / ground truth / prediction for the first validation images, every validation epoch:
sent to W&B when it is a logger, and always saved as PNG under ``<run>/panels/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from umsi.data.transforms import denormalize_image
from umsi.utils.io import write_image
from umsi.visualize import triptych


def panel_rows(images: torch.Tensor, targets: torch.Tensor, preds: torch.Tensor, preprocessing: str) -> np.ndarray:
    """Stack [image | ground truth | prediction overlay] rows, all at the map size. → (N·H, 3·W, 3) RGB."""
    rows = [
        triptych(denormalize_image(image, preprocessing), _plane(target), _plane(pred))
        for image, target, pred in zip(images, targets, preds, strict=True)
    ]
    return np.concatenate(rows, axis=0)


def _plane(saliency: torch.Tensor) -> np.ndarray:
    """(1, H, W) tensor → (H, W) float32 array."""
    return saliency.detach().float().cpu().squeeze(0).numpy()


class PredictionPanel(Callback):
    """Builds the panel from the first validation batch's predictions (returned by ``validation_step``)."""

    def __init__(self, num_images: int = 4, preprocessing: str = "official", save_dir: str | None = None):
        self.num_images = num_images
        self.preprocessing = preprocessing
        self.save_dir = save_dir
        self._panel: np.ndarray | None = None

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx != 0 or dataloader_idx != 0 or trainer.sanity_checking or not isinstance(outputs, dict):
            return
        n = self.num_images
        self._panel = panel_rows(batch["image"][:n], batch["saliency"][:n], outputs["saliency"][:n], self.preprocessing)

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._panel is None:
            return
        panel, self._panel = self._panel, None
        save_dir = Path(self.save_dir or trainer.default_root_dir) / "panels"
        write_image(save_dir / f"epoch_{trainer.current_epoch:03d}.png", panel)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    key="val/panel",
                    images=[panel],
                    caption=["image | ground truth | prediction"],
                    step=trainer.global_step,
                )
