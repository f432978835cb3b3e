"""The Lightning checkpoint plugin ``umsi-train`` uses: saves go through a temporary file in the checkpoint's own
folder, flushed to disk, then renamed over the target, so a process killed at any moment leaves the previous
``last.ckpt`` or the new one, never a torn file; loads use :func:`~umsi.checkpoints.files.read_checkpoint`
(weights only, clear errors). Apart from :mod:`umsi.checkpoints.files` because it imports Lightning."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from umsi.checkpoints.files import read_checkpoint
from umsi.utils.io import atomic_write


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning ``CheckpointIO``: crash-safe saves (temporary file in the same folder, fsync, rename) and
    weights-only loads with clear errors (:func:`read_checkpoint`)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("SafeCheckpointIO does not take storage_options")
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp), durable=True)

    def load_checkpoint(
        self, path: Any, map_location: Callable | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return read_checkpoint(path, key="ckpt_path")
