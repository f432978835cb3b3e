"""A NaN training loss stops the run, names the batch's files, and leaves the last good checkpoint untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import copy_run
from umsi.callbacks import NonFiniteLossError
from umsi.training.runner import run


def test_nan_loss_stops_naming_files_and_keeps_the_last_checkpoint(tiny_cfg, trained: Path, tmp_path: Path) -> None:
    first_run = next(trained.glob("*/*/checkpoints")).parent  # the session's tiny 1-epoch pretraining run
    copy_run(first_run, tmp_path / "run")
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    stamp = (last.stat().st_mtime_ns, last.stat().st_size)
    cfg, overrides = tiny_cfg("stage=pretrain", "ckpt_path=last", "trainer.max_epochs=2", "loss.kl=nan")
    with pytest.raises(NonFiniteLossError, match=r"(?s)non-finite training loss \(nan\) at epoch 1.*COCO_.*\.jpg"):
        run(cfg, overrides)
    assert (last.stat().st_mtime_ns, last.stat().st_size) == stamp
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 0
