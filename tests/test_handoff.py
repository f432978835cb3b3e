"""The best-checkpoint hand-off file names a checkpoint that exists, also after a run killed between epochs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from umsi.paths import CONFIG_DIR


class Killed(Exception):
    """Stands for the kill: nothing of the run's own end (on_fit_end) runs."""


class KillAtEpochStart(pl.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise Killed(f"killed before epoch {self.epoch}")


class ImprovingModel(pl.LightningModule):
    """One weight; its validation loss is 1 / (epoch + 1), so every epoch is a new best and ModelCheckpoint
    (save_top_k=1) deletes the previous best each time it saves."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return (self.weight - batch[0].mean()) ** 2

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.log("val/loss", 1.0 / (self.current_epoch + 1))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_handoff_lag_names_an_existing_checkpoint_after_a_kill_between_epochs(tmp_path: Path) -> None:
    """The project's ModelCheckpoint and BestCheckpointHandoff (conf/callbacks/default.yaml); the run is killed as
    epoch 3 starts, after epoch 2's checkpoint replaced epoch 1's. best_checkpoint.json must name epoch 2's file,
    which exists, not epoch 1's, which ModelCheckpoint has deleted."""
    conf = OmegaConf.load(Path(CONFIG_DIR) / "callbacks" / "default.yaml")
    conf.model_checkpoint.dirpath = str(tmp_path / "checkpoints")
    conf.best_checkpoint_handoff.path = str(tmp_path / "best_checkpoint.json")
    callbacks = [instantiate(conf.best_checkpoint_handoff), instantiate(conf.model_checkpoint), KillAtEpochStart(3)]
    data = DataLoader(TensorDataset(torch.ones(4, 1)), batch_size=2)
    trainer = pl.Trainer(
        max_epochs=6,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
        default_root_dir=tmp_path,
    )
    with pytest.raises(Killed):
        trainer.fit(ImprovingModel(), data, data)
    handoff = json.loads((tmp_path / "best_checkpoint.json").read_text())
    saved = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert Path(handoff["best_model_path"]).is_file(), (handoff, saved)
    assert Path(handoff["best_model_path"]).name.startswith("epoch002")
    assert Path(handoff["last_model_path"]).is_file()
