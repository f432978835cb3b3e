"""Read a Keras 2.x HDF5 model or weights file with h5py only.

Never loads Keras and never deserialises the stored ``Lambda`` layer (marshalled Python bytecode): the root
``model_config`` attribute is only parsed as JSON text. Layout (umsi-reference §2.1): full-model files keep the
weights under ``model_weights/``, ``save_weights`` files at the root; either way an attribute ``layer_names``
lists the layers in ``model.layers`` order and each layer group's ``weight_names`` lists its variables.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from umsi.errors import UserError


class ConversionError(UserError, ValueError):
    """The Keras file cannot be converted; the message names the file or layer and what to do."""

    kind = "conversion error"


@dataclass
class KerasFile:
    """What a Keras HDF5 file holds: every layer name in order, the variables of weighted layers (Keras shapes),
    the architecture JSON (``None`` for weights-only files) and provenance."""

    path: Path
    layer_names: list[str]
    weights: dict[str, dict[str, np.ndarray]]
    model_config: dict[str, Any] | None
    attributes: dict[str, str] = field(default_factory=dict)
    sha256: str = ""

    @property
    def values(self) -> int:
        """Number of stored values (what Keras reports as parameters: BN moving statistics included)."""
        return sum(a.size for variables in self.weights.values() for a in variables.values())

    def layer_configs(self) -> dict[str, dict[str, Any]]:
        """``{layer name: {"class_name": …, **config}}`` from the architecture JSON (empty without one)."""
        layers = ((self.model_config or {}).get("config") or {}).get("layers") or []
        return {layer["config"]["name"]: {"class_name": layer.get("class_name"), **layer["config"]} for layer in layers}


def _text(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _variable_name(weight_name: str) -> str:
    """``block1_conv1/kernel:0`` (or ``scope_1/kernel:0``) → ``kernel``."""
    return weight_name.rsplit("/", 1)[-1].split(":", 1)[0]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_keras_h5(path: str | Path) -> KerasFile:
    """Read every weight of a Keras 2.x ``.h5``; raises ``ConversionError`` naming the file or layer on a
    truncated, unreadable or non-Keras file."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise ConversionError(
            f"{path}: not a readable HDF5 file ({err}). A truncated or interrupted download? Download it again."
        ) from err
    with handle:
        group = handle.get("model_weights", handle)
        if "layer_names" not in group.attrs:
            raise ConversionError(f"{path}: no 'layer_names' attribute, so this is not a Keras model or weights file")
        layer_names = [_text(n) for n in group.attrs["layer_names"]]
        weights: dict[str, dict[str, np.ndarray]] = {}
        for name in layer_names:
            if name not in group:
                raise ConversionError(f"{path}: layer '{name}' is listed in layer_names but has no weight group")
            variables = {}
            for weight_name in (_text(w) for w in group[name].attrs.get("weight_names", [])):
                try:
                    variables[_variable_name(weight_name)] = np.asarray(group[name][weight_name], dtype=np.float32)
                except (OSError, KeyError) as err:
                    raise ConversionError(
                        f"{path}: layer '{name}': cannot read '{weight_name}' ({err}). The file is damaged or "
                        "truncated; download it again."
                    ) from err
            if variables:
                weights[name] = variables
        model_config = None
        if "model_config" in handle.attrs:
            try:
                model_config = json.loads(_text(handle.attrs["model_config"]))
            except json.JSONDecodeError as err:
                raise ConversionError(f"{path}: the model_config attribute is not valid JSON ({err})") from err
        attributes = {k: _text(group.attrs[k]) for k in ("keras_version", "backend") if k in group.attrs}
    return KerasFile(path, layer_names, weights, model_config, attributes, file_sha256(path))
