"""A panel of the first validation images, every validation epoch, laid out like the evaluation report's Examples
(:func:`umsi.visualize.prediction_grid`): labelled rows [image | ground truth | prediction], both maps drawn the
same way with one colour scale, each row with its CC and KL and, on class-labelled data, the true and predicted
class. Sent to W&B when it is a logger, and always saved as PNG under ``<run>/panels/``."""

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
from umsi.metrics import functional as M
from umsi.utils.io import write_image
from umsi.visualize import PredictionRow, class_title, figure_rgb, prediction_grid, row_label


def panel_rows(
    batch: dict[str, Any],
    preds: torch.Tensor,
    logits: torch.Tensor | None,
    preprocessing: str,
    class_names: list[str] | None = None,
) -> list[PredictionRow]:
    """One row per image of ``batch`` (``image`` (N, 3, H, W), ``saliency`` (N, 1, h, w), optional ``path`` and
    ``label`` (N,)) with ``preds`` (N, 1, h, w) and ``logits`` (N, K) or None. CC and KL (``umsi`` convention) are
    computed in the letterboxed output frame; classes are named when ``class_names`` is given and a label ≥ 0."""
    targets = batch["saliency"].detach().float().cpu()
    preds = preds.detach().float().cpu()
    ccs = M.cc(preds, targets, convention="umsi").tolist()
    kls = M.kl(preds, targets, convention="umsi").tolist()
    rows = []
    for i in range(preds.shape[0]):
        name = Path(batch["path"][i]).stem if "path" in batch else f"validation image {i}"
        true_class = predicted_class = None
        label = int(batch["label"][i]) if "label" in batch else -1
        if class_names and label >= 0:
            true_class = class_title(class_names[label])
            if logits is not None:
                predicted_class = class_title(class_names[int(logits[i].argmax())])
        rows.append(
            PredictionRow(
                denormalize_image(batch["image"][i], preprocessing),
                targets[i, 0].numpy(),
                preds[i, 0].numpy(),
                row_label(name, ccs[i], kls[i], true_class, predicted_class),
            )
        )
    return rows


class PredictionPanel(Callback):
    """Builds the panel from the first validation batch's predictions (``validation_step`` returns ``saliency``
    and ``logits``). ``style``: ``map`` or ``overlay`` (how both maps are drawn); ``colormap``: a matplotlib name."""

    def __init__(
        self,
        num_images: int = 4,
        preprocessing: str = "official",
        save_dir: str | None = None,
        style: str = "map",
        colormap: str = "jet",
    ):
        self.num_images = num_images
        self.preprocessing = preprocessing
        self.save_dir = save_dir
        self.style, self.colormap = style, colormap
        self._rows: list[PredictionRow] | None = None

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
        first = {k: v[:n] for k, v in batch.items() if k in ("image", "saliency", "path", "label")}
        logits = outputs.get("logits")
        class_names = pl_module.hparams.get("class_names") if hasattr(pl_module, "hparams") else None
        self._rows = panel_rows(
            first, outputs["saliency"][:n], None if logits is None else logits[:n], self.preprocessing, class_names
        )

    def panel(self, trainer: pl.Trainer) -> np.ndarray | None:
        """The pending panel as an (H, W, 3) uint8 RGB picture, titled with the validation set, the run and the
        epoch; None when no validation batch was seen since the last one."""
        if self._rows is None:
            return None
        rows, self._rows = self._rows, None
        root = getattr(trainer.datamodule, "root", None) if trainer.datamodule is not None else None
        dataset = f"{Path(root).name} validation set" if root else "validation set"
        run_dir = Path(self.save_dir or trainer.default_root_dir)
        title = f"Validation · {dataset} · {run_dir.parent.name}/{run_dir.name} at epoch {trainer.current_epoch}"
        return figure_rgb(prediction_grid(rows, title, self.style, self.colormap))

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        panel = self.panel(trainer)
        if panel is None:
            return
        save_dir = Path(self.save_dir or trainer.default_root_dir) / "panels"
        write_image(save_dir / f"epoch_{trainer.current_epoch:03d}.png", panel)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    key="val/panel",
                    images=[panel],
                    caption=[f"epoch {trainer.current_epoch}: image | ground truth | prediction"],
                    step=trainer.global_step,
                )
