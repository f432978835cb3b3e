"""Random-number-generator state in checkpoints, so that a resumed run continues exactly where it stopped."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from pytorch_lightning.callbacks import Callback


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU (and CUDA) generator states as tensors and plain values (``weights_only``-safe)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos)},
        "numpy_gauss": {"has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (the CUDA part only when this machine has as many GPUs)."""
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss"]))
    numpy, gauss = state["numpy"], state["numpy_gauss"]
    keys = numpy["keys"].numpy().astype(np.uint32)
    np.random.set_state((numpy["name"], keys, numpy["pos"], gauss["has_gauss"], gauss["cached"]))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


class RngStateCheckpoint(Callback):
    """Stores the generator states in every checkpoint and restores them when a run resumes from one.

    Lightning saves at the end of an epoch's validation and, in an uninterrupted run, nothing draws random
    numbers between that save and the next epoch's data loader; a resumed run creates that loader right after
    restoring (its sanity check runs with the generators isolated). Restoring at load time therefore gives the
    resumed run the same shuffling, SALICON draw, dropout and augmentation as an uninterrupted one (exact on
    one process; under DDP every rank gets rank 0's state).
    """

    def state_dict(self) -> dict[str, Any]:
        return capture_rng_state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:
            restore_rng_state(state_dict)
