"""Experiment loggers: Weights & Biases online when an API key is available, offline otherwise."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import WandbLogger

log = logging.getLogger(__name__)
WANDB_HOST = "api.wandb.ai"


def wandb_api_key_present() -> bool:
    """True when ``WANDB_API_KEY`` is set or ``~/.netrc`` has W&B credentials (``wandb login``)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(WANDB_HOST) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_mode(requested: str | None = None) -> str:
    """``requested`` if given, else ``$WANDB_MODE``, else online with an API key and offline without."""
    return requested or os.environ.get("WANDB_MODE") or ("online" if wandb_api_key_present() else "offline")


def make_wandb_logger(save_dir: str, mode: str | None = None, **kwargs: Any) -> WandbLogger:
    """A ``WandbLogger`` whose run files live under ``save_dir/wandb``; offline runs can be uploaded later
    with ``wandb sync <save_dir>/wandb/offline-run-*``."""
    mode = wandb_mode(mode)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    if mode == "offline":
        log.info("W&B offline (no API key): run files in %s/wandb; upload later with `wandb sync`", save_dir)
    return WandbLogger(save_dir=save_dir, mode=mode, **kwargs)
