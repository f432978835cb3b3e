"""Reading and writing checkpoints safely.

* :func:`read_checkpoint` loads with ``torch.load(weights_only=True)`` (tensors and plain containers only: no
  object in a file is ever unpickled, no code in it runs) and turns the many ways a file can be broken into a
  :class:`~umsi.errors.CheckpointError` that names the file and says what to do.
* :func:`describe_mismatch` names the missing, unexpected and differently-shaped keys between a model and a
  ``state_dict``.
* :class:`~umsi.checkpoints.lightning_io.SafeCheckpointIO` (its own module: it imports Lightning, which loading a
  model for inference does not) is the crash-safe Lightning checkpoint plugin built on these.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from umsi.errors import CheckpointError, MissingPathError

_ZIP_MAGIC = b"PK\x03\x04"
_BLOCKED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def read_checkpoint(path: str | Path, key: str | None = None) -> dict[str, Any]:
    """The dict stored in a ``torch.save`` file, on the CPU, loaded with ``weights_only=True``.

    ``key`` names the config key the path came from, for the messages. Raises :class:`MissingPathError` when
    the file does not exist and :class:`CheckpointError` when it is truncated, corrupt, not a PyTorch file, or
    holds Python objects that weights-only loading refuses.
    """
    path = Path(path)
    named = f"{key}={path}" if key else str(path)
    if not path.is_file():
        raise MissingPathError(f"{named}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        blocked = _BLOCKED_GLOBAL.search(str(err))
        if blocked:
            raise CheckpointError(
                f"{named} holds a Python object ({blocked.group(1)}) besides tensors and plain values; umsi loads "
                "checkpoints weights-only and never runs code from a file. Re-save the weights as plain tensors "
                "(torch.save({'state_dict': model.state_dict()}, path)) where you trust the file"
            ) from None
        raise CheckpointError(_corrupt_message(path, named, err)) from None
    except Exception as err:  # the unpickler raises all kinds (IndexError, KeyError …) on arbitrary bytes
        raise CheckpointError(_corrupt_message(path, named, err)) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{named} holds a {type(state).__name__}, not a checkpoint dict")
    return state


def _corrupt_message(path: Path, named: str, err: BaseException) -> str:
    size = path.stat().st_size
    with path.open("rb") as handle:
        is_zip = handle.read(4) == _ZIP_MAGIC
    reason = str(err).split(". ")[0].strip() or type(err).__name__
    if size == 0:
        what = "is empty (0 bytes)"
    elif is_zip:
        what = f"is truncated or corrupt ({size:,} bytes; {reason})"
    else:
        what = f"is not a PyTorch checkpoint ({size:,} bytes; {reason})"
    return (
        f"{named} {what}. It was probably cut off by a crash, a full disk or an incomplete copy: copy it again, "
        f"or use another checkpoint of its folder {path.parent} (last.ckpt, the best epoch*.ckpt)"
    )


def describe_mismatch(model: nn.Module, weights: Mapping[str, torch.Tensor], limit: int = 8) -> str | None:
    """``None`` when ``weights`` fits ``model`` exactly, else the missing, unexpected and differently-shaped
    keys (at most ``limit`` of each, with counts)."""
    expected = model.state_dict()
    # BatchNorm fills in a missing step counter itself (converted Keras weights have none)
    missing = [k for k in expected if k not in weights and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in weights if k not in expected]
    shapes = [
        f"{k} {tuple(weights[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in weights and hasattr(weights[k], "shape") and tuple(weights[k].shape) != tuple(expected[k].shape)
    ]
    parts = [
        f"{label} ({len(keys)}): {', '.join(keys[:limit])}{' …' if len(keys) > limit else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape checkpoint vs model", shapes))
        if keys
    ]
    return "; ".join(parts) or None


def load_matching(model: nn.Module, weights: Mapping[str, torch.Tensor], source: str, fix: str) -> None:
    """Load ``weights`` into ``model`` when every key and shape matches; otherwise raise a
    :class:`CheckpointError` naming ``source``, the mismatched keys and ``fix``."""
    mismatch = describe_mismatch(model, weights)
    if mismatch:
        raise CheckpointError(f"{source} does not fit the model: {mismatch}. {fix}")
    model.load_state_dict(weights)
