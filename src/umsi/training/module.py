"""LightningModule around the UMSI network and its multi-task loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch import nn

from umsi.metrics.collection import ClassAccuracy, MeanSaliencyMetric

VAL_METRICS = ("cc", "kl", "nss", "acc")


class UMSILitModule(pl.LightningModule):
    """Trains ``model`` with ``loss``; both, and the optimizer, are plain config dicts with ``_target_`` so
    the checkpoint's hyper-parameters stay loadable with ``torch.load(weights_only=True)``.

    Logged: ``{train,val}/loss`` and each weighted term ``{train,val}/loss_<term>``; per-image means over the
    whole validation set (all DDP ranks: summed values and counts) of ``val/cc``, ``val/kl`` (official UMSI
    evaluation convention), ``val/nss`` (images with fixations only; 0.0 if none has any) and ``val/acc``
    (images with a class label ≥ 0 only).
    """

    def __init__(
        self,
        model: dict[str, Any],
        loss: dict[str, Any],
        optimizer: dict[str, Any],
        class_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model: nn.Module = instantiate(model, _convert_="all")
        self.criterion: nn.Module = instantiate(loss, _convert_="all")
        num_classes = getattr(self.model, "num_classes", None) or len(class_names or ())
        self.val_metrics = _metric_collection(num_classes)
        self.test_metrics = _metric_collection(num_classes)

    def forward(self, image: torch.Tensor):
        return self.model(image)

    def _step(self, batch: dict[str, Any], prefix: str):
        out = self.model(batch["image"])
        loss = self.criterion(out.saliency, out.logits, batch["saliency"], batch["fixations"], batch["label"])
        size = batch["image"].shape[0]
        on_step = prefix == "train"
        self.log(f"{prefix}/loss", loss.total, prog_bar=True, on_step=on_step, on_epoch=True, batch_size=size)
        for name, value in loss.weighted.items():
            self.log(f"{prefix}/loss_{name}", value, on_step=False, on_epoch=True, batch_size=size)
        return out, loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")[1].total

    def _evaluation_step(self, batch: dict[str, Any], prefix: str, metrics: nn.ModuleDict) -> dict[str, torch.Tensor]:
        out, _ = self._step(batch, prefix)
        saliency, fixations = out.saliency.detach(), batch["fixations"]
        metrics["cc"].update(saliency, batch["saliency"])
        metrics["kl"].update(saliency, batch["saliency"])
        metrics["nss"].update(saliency, fixations, mask=fixations.flatten(1).sum(dim=1) > 0)
        metrics["acc"].update(out.logits.detach(), batch["label"])
        for name, metric in metrics.items():
            self.log(f"{prefix}/{name}", metric, on_step=False, on_epoch=True, prog_bar=name == "cc")
        return {"saliency": saliency}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        return self._evaluation_step(batch, "val", self.val_metrics)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        return self._evaluation_step(batch, "test", self.test_metrics)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return instantiate(self.hparams.optimizer, params=self.parameters())


def _metric_collection(num_classes: int) -> nn.ModuleDict:
    """cc, kl (official convention), nss (images with fixations) and class accuracy, DDP-safe."""
    return nn.ModuleDict(
        {
            "cc": MeanSaliencyMetric("cc", convention="umsi"),
            "kl": MeanSaliencyMetric("kl", convention="umsi"),
            "nss": MeanSaliencyMetric("nss", convention="umsi"),
            "acc": ClassAccuracy(num_classes),
        }
    )


def load_weights(module: nn.Module, checkpoint: str | Path) -> None:
    """Initialise ``module`` from a Lightning checkpoint's ``state_dict`` (weights only, no optimizer state).
    Loads with ``weights_only=True``; a mismatch names the missing and unexpected keys."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"init_ckpt={checkpoint}: no such checkpoint file")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(
            f"checkpoint {path} does not match the configured model: missing {result.missing_keys[:5]} "
            f"({len(result.missing_keys)}), unexpected {result.unexpected_keys[:5]} "
            f"({len(result.unexpected_keys)}). Check the model.* settings against the run that wrote it."
        )
