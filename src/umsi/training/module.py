"""LightningModule around the UMSI network and its multi-task loss."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch import nn

from umsi.checkpoints.files import load_matching, read_checkpoint
from umsi.metrics.collection import ClassAccuracy, MeanSaliencyMetric
from umsi.models.card import CARD_KEY, ModelCard
from umsi.models.registry import build_model, model_config

log = logging.getLogger(__name__)

VAL_METRICS = ("cc", "kl", "nss", "acc")


class UMSILitModule(pl.LightningModule):
    """Trains ``model`` (a config dict naming a registered ``architecture`` and its arguments) with ``loss``
    (a config dict with ``_target_``); they, the optimizer and ``card`` are plain dicts, so the checkpoint's
    hyper-parameters stay loadable with ``torch.load(weights_only=True)``. ``card`` (a
    :class:`~umsi.models.card.ModelCard` dict: input size, preprocessing, source …) is written into every
    checkpoint under ``umsi_card``; without one the checkpoints carry none.

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
        card: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.card = None if card is None else ModelCard.from_dict(card)  # checked before the first step
        self.model: nn.Module = build_model(model)
        self.criterion: nn.Module = instantiate(loss, _convert_="all")
        num_classes = getattr(self.model, "num_classes", None) or len(class_names or ())
        self.val_metrics = _metric_collection(num_classes)
        self.test_metrics = _metric_collection(num_classes)

    def forward(self, image: torch.Tensor):
        return self.model(image)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Every checkpoint carries the model card (plain dict under ``umsi_card``)."""
        if self.card is not None:
            checkpoint[CARD_KEY] = self.card.to_dict()

    def _step(self, batch: dict[str, Any], prefix: str):
        out = self.model(batch["image"])
        loss = self.criterion(out.saliency, out.logits, batch["saliency"], batch["fixations"], batch["label"])
        size = batch["image"].shape[0]
        on_step = prefix == "train"
        sync = prefix != "train"  # val/loss picks the best checkpoint: average it over all DDP ranks
        self.log(
            f"{prefix}/loss", loss.total, prog_bar=True, on_step=on_step, on_epoch=True, batch_size=size, sync_dist=sync
        )
        for name, value in loss.weighted.items():
            self.log(f"{prefix}/loss_{name}", value, on_step=False, on_epoch=True, batch_size=size, sync_dist=sync)
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
        return {"saliency": saliency, "logits": out.logits.detach()}

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


def load_weights(module: UMSILitModule, checkpoint: str | Path) -> None:
    """Initialise ``module`` from a checkpoint's ``state_dict`` (weights only, no optimizer state): a
    ``umsi-train`` checkpoint or ``umsi-convert-keras`` output. Loads with ``weights_only=True``; a mismatch names
    the missing and unexpected keys. When both sides name their classes in a different order, the classifier
    outputs are permuted to the data's order; a different model config is reported."""
    path = Path(checkpoint)
    state = read_checkpoint(path, key="init_ckpt")
    stored = state.get("hyper_parameters") or {}
    card = state.get(CARD_KEY) or {}
    weights = dict(state.get("state_dict", state))
    stored_model = {"architecture": card["architecture"], **card["model_args"]} if card else stored.get("model")
    _warn_model_differences(path, stored_model, module.hparams.get("model"))
    stored_classes = card.get("class_names") or stored.get("class_names")
    _reorder_classifier(path, weights, stored_classes, module.hparams.get("class_names"))
    load_matching(
        module,
        weights,
        f"init_ckpt={path}",
        "Check the model.* settings (model=umsi|umsi_official, model.num_classes …) against the run that wrote it.",
    )


def _warn_model_differences(path: Path, stored: dict | None, current: dict | None) -> None:
    if not stored or not current:
        return
    legacy = "_target_" in stored  # an import path maps to "umsi" whatever the preset: compare the arguments only
    (stored_name, stored), (current_name, current) = model_config(stored), model_config(current)
    if not legacy:
        stored, current = {"architecture": stored_name, **stored}, {"architecture": current_name, **current}
    # the encoder's initialisation (overwritten by the checkpoint) and the dropout rates (a training choice; the
    # network computes the same at inference) do not make the weights mean something else
    ignored = ("pretrained", "pretrained_file", "dropout")
    keys = sorted(k for k in set(stored) | set(current) if k not in ignored and stored.get(k) != current.get(k))
    if keys:
        log.warning(
            "init_ckpt %s was written for another model config (%s); its weights load, but the network computes "
            "differently. Converted official weights belong with model=umsi_official.",
            path,
            ", ".join(f"{k}: {stored.get(k)} → {current.get(k)}" for k in keys),
        )


def _reorder_classifier(
    path: Path, weights: dict[str, torch.Tensor], stored: list[str] | None, current: list[str] | None
) -> None:
    """Permute ``model.classifier`` rows from the checkpoint's class order to the data's (same names)."""
    if not stored or not current or list(stored) == list(current):
        return
    if sorted(stored) != sorted(current):
        log.warning("init_ckpt %s classes %s differ from the data's %s; classifier used as is", path, stored, current)
        return
    order = torch.tensor([list(stored).index(name) for name in current])
    for key in ("model.classifier.weight", "model.classifier.bias"):
        if key in weights:
            weights[key] = weights[key][order]
    log.info("classifier outputs reordered from %s to the data's order %s", stored, current)
