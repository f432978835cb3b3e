"""Convert the released UMSI Keras ``.h5`` into a umsi checkpoint for ``UMSI.official()`` (``model=umsi_official``).

Every one of the 107 weighted layers is mapped with the documented transposes (umsi-reference §2.2), every
shape and the total are checked, and, when the file holds its architecture JSON, each layer's type, strides,
dilations and BatchNorm ε are compared with the PyTorch network. Anything missing, extra or misshaped stops the
conversion with the layer's name; nothing is written then.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from umsi.data.layouts import NATURAL_IMAGES, read_class_mapping
from umsi.models import UMSI, count_parameters
from umsi.models.card import CARD_KEY
from umsi.models.registry import ARCHITECTURE_KEY, default_card
from umsi.models.umsi import OFFICIAL_NUMERICS
from umsi.official.h5 import ConversionError, KerasFile, read_keras_h5
from umsi.official.keras_layout import (
    BATCHNORM,
    CONV,
    DENSE,
    KERAS_VARIABLES,
    OPTIONAL_VARIABLES,
    KerasLayer,
    is_auto_named,
    official_layers,
)
from umsi.utils.io import atomic_write

log = logging.getLogger(__name__)

OFFICIAL_NAME = "UMSI (official)"
RELEASED_FILE = "xception_cl_fus_aspp_imp1k_10kl-3cc0.1mse-5nss5bc_bs4_ep30_valloss-2.5774_full.h5"
# The released head's index order is not documented (umsi-reference §6.3): this default is a guess to be
# checked with umsi-probe-classes, and the checkpoint records whether the order was given.
DEFAULT_CLASS_ORDER = ("advertisements", "infographics", "mobile_uis", "movie_posters", "webpages", NATURAL_IMAGES)

# Keras (TF, NHWC) → PyTorch (NCHW) layouts, per variable kind.
_TO_TORCH = {
    "kernel4d": (3, 2, 0, 1),  # Conv2D / pointwise (kh, kw, Cin, Cout) → (Cout, Cin, kh, kw)
    "depthwise": (2, 3, 0, 1),  # (kh, kw, C, 1) → (C, 1, kh, kw)
    "dense": (1, 0),  # (in, out) → (out, in)
}


def _permutation(keras_type: str, variable: str) -> tuple[int, ...] | None:
    if variable == "depthwise_kernel":
        return _TO_TORCH["depthwise"]
    if variable in ("kernel", "pointwise_kernel"):
        return _TO_TORCH["dense"] if keras_type == DENSE else _TO_TORCH["kernel4d"]
    return None


def keras_to_torch(keras_type: str, variable: str, value: np.ndarray) -> torch.Tensor:
    """One Keras variable → the PyTorch tensor of the matching module (transposed where layouts differ)."""
    order = _permutation(keras_type, variable)
    array = value.transpose(order) if order else value
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _keras_shape(keras_type: str, variable: str, torch_shape: Sequence[int]) -> tuple[int, ...]:
    """The Keras shape a PyTorch tensor of ``torch_shape`` comes from (inverse of ``keras_to_torch``)."""
    order = _permutation(keras_type, variable)
    if order is None:
        return tuple(torch_shape)
    inverse = np.argsort(order)
    return tuple(int(torch_shape[i]) for i in inverse)


def official_model_config(num_classes: int = 6) -> dict[str, Any]:
    """The ``model=umsi_official`` config as a plain dict (``architecture`` + every ``UMSI`` argument)."""
    defaults = {
        name: (list(map(list, p.default)) if name == "decoder_channels" else p.default)
        for name, p in inspect.signature(UMSI.__init__).parameters.items()
        if name != "self"
    }
    defaults["aspp_dilations"] = list(defaults["aspp_dilations"])
    return {ARCHITECTURE_KEY: "umsi_official", **defaults, **OFFICIAL_NUMERICS, "num_classes": num_classes}


def _resolve_names(keras: KerasFile, layout: list[KerasLayer]) -> dict[str, str]:
    """Canonical layer name → the file's name. Keras auto-numbers unnamed layers globally, so the residual
    ``conv2d_*`` / ``batch_normalization_*`` are matched by order of appearance, not by number."""
    names = {layer.name: layer.name for layer in layout if layer.name in keras.weights}
    for keras_type in (CONV, BATCHNORM):
        expected = [layer.name for layer in layout if is_auto_named(layer.name, keras_type)]
        present = [n for n in keras.weights if is_auto_named(n, keras_type)]
        if len(present) == len(expected):
            for name in expected:
                names.pop(name, None)
            names.update(zip(expected, present, strict=True))
    return names


def _check_layer_set(keras: KerasFile, layout: list[KerasLayer], names: dict[str, str]) -> None:
    missing = [layer.name for layer in layout if layer.name not in names]
    extra = sorted(set(keras.weights) - set(names.values()))
    if missing or extra:
        lines = [f"{keras.path}: the weighted layers do not match the released UMSI (xception_cl_fus_aspp)."]
        if missing:
            lines.append(f"  missing ({len(missing)}): {', '.join(missing[:12])}{' …' if len(missing) > 12 else ''}")
        if extra:
            lines.append(f"  unexpected ({len(extra)}): {', '.join(extra[:12])}{' …' if len(extra) > 12 else ''}")
        lines.append(f"  Is this the released file ({RELEASED_FILE})? Other UMSI variants are not supported.")
        raise ConversionError("\n".join(lines))


def _check_classifier(keras: KerasFile, names: dict[str, str], num_classes: int) -> None:
    kernel = keras.weights[names["out_classif"]].get("kernel")
    if kernel is not None and kernel.ndim == 2 and kernel.shape[1] != num_classes:
        raise ConversionError(
            f"{keras.path}: layer 'out_classif' has {kernel.shape[1]} classes, expected {num_classes} "
            "(the released UMSI: 5 design classes + natural_images). Pass --num-classes for another class count."
        )


def _module_numerics(module: nn.Module) -> dict[str, Any]:
    """Keras config values the PyTorch module implies (only what the file's JSON can contradict)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return {"epsilon": module.eps}
    conv = getattr(module, "conv1", module)  # separable: the depthwise conv carries stride and dilation
    if isinstance(conv, nn.Conv2d):
        return {"strides": list(conv.stride), "dilation_rate": list(conv.dilation)}
    return {}


def _check_architecture(keras: KerasFile, model: nn.Module, layout: list[KerasLayer], names: dict[str, str]) -> None:
    """Compare the file's architecture JSON (when present) with the PyTorch network, layer by layer."""
    configs = keras.layer_configs()
    if not configs:
        log.warning("%s has no architecture JSON (a weights-only file): only names and shapes are checked", keras.path)
        return
    problems = []
    modules = dict(model.named_modules())
    for layer in layout:
        config = configs.get(names[layer.name])
        if config is None:
            problems.append(f"{names[layer.name]}: not in the architecture JSON")
            continue
        if config["class_name"] != layer.keras_type:
            problems.append(f"{names[layer.name]}: a {config['class_name']} in the file, expected {layer.keras_type}")
            continue
        for key, value in _module_numerics(modules[layer.module]).items():
            stored = config.get(key)
            stored = list(stored) if isinstance(stored, list | tuple) else stored
            if stored is not None and (
                not np.allclose(stored, value, rtol=1e-6) if key == "epsilon" else stored != value
            ):
                problems.append(f"{names[layer.name]}: {key}={stored} in the file, the PyTorch network has {value}")
    for name, config in configs.items():
        if config["class_name"] == "UpSampling2D" and config.get("interpolation", "nearest") != "bilinear":
            problems.append(f"{name}: interpolation={config.get('interpolation')!r}, the released model is bilinear")
    if problems:
        raise ConversionError(
            f"{keras.path}: the architecture differs from UMSI.official():\n  " + "\n  ".join(problems)
        )


def convert_keras_file(keras: KerasFile, num_classes: int = 6) -> tuple[dict[str, torch.Tensor], UMSI]:
    """Map a read Keras file onto ``UMSI.official(num_classes)``; returns (state dict, loaded model).
    Raises ``ConversionError`` naming the layer on anything missing, extra or misshaped."""
    layout = official_layers()
    names = _resolve_names(keras, layout)
    _check_layer_set(keras, layout, names)
    _check_classifier(keras, names, num_classes)
    model = UMSI.official(num_classes=num_classes)
    _check_architecture(keras, model, layout, names)
    target = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    for layer in layout:
        file_name, variables = names[layer.name], keras.weights[names[layer.name]]
        known = KERAS_VARIABLES[layer.keras_type]
        unknown = sorted(set(variables) - set(known))
        if unknown:
            raise ConversionError(
                f"{keras.path}: layer '{file_name}' ({layer.keras_type}) has unexpected variables {unknown}"
            )
        for variable, torch_name in known.items():
            key = f"{layer.module}.{torch_name}"
            if variable not in variables:
                if (layer.keras_type, variable) in OPTIONAL_VARIABLES and key not in target:
                    continue
                raise ConversionError(f"{keras.path}: layer '{file_name}' lacks its '{variable}' variable")
            if key not in target:
                raise ConversionError(
                    f"{keras.path}: layer '{file_name}' has a '{variable}' that UMSI.official() lacks"
                )
            value = variables[variable]
            expected = _keras_shape(layer.keras_type, variable, target[key].shape)
            if tuple(value.shape) != expected:
                raise ConversionError(
                    f"{keras.path}: layer '{file_name}' variable '{variable}' has shape {tuple(value.shape)}, "
                    f"expected {expected} (Keras layout)"
                )
            state[key] = keras_to_torch(layer.keras_type, variable, value)
    unfilled = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    if unfilled:
        raise ConversionError(f"internal: no Keras variable maps to {unfilled[:5]} ({len(unfilled)})")
    expected_total = sum(count_parameters(model))
    if keras.values != expected_total:
        raise ConversionError(f"{keras.path}: {keras.values:,} stored values, expected {expected_total:,}")
    result = model.load_state_dict(state, strict=False)
    assert not result.unexpected_keys and all(k.endswith("num_batches_tracked") for k in result.missing_keys)
    return state, model.eval()


def parse_class_order(value: str | None, num_classes: int) -> tuple[list[str], bool]:
    """``--class-order``: comma-separated names or a mapping file ("name … index" lines) → (names, given)."""
    if not value:
        names, given = list(DEFAULT_CLASS_ORDER), False
    elif Path(value).is_file():
        names, given = read_class_mapping(value), True
    else:
        names, given = [n.strip() for n in value.split(",") if n.strip()], True
    if len(names) != num_classes or len(set(names)) != len(names):
        raise ConversionError(
            f"--class-order gives {len(names)} names {names}; the classifier has {num_classes} outputs and each name "
            "must appear once (example: --class-order " + ",".join(DEFAULT_CLASS_ORDER) + ")"
        )
    return names, given


def build_checkpoint(
    keras: KerasFile, state: dict[str, torch.Tensor], class_names: list[str], class_order_given: bool
) -> dict[str, Any]:
    """A Lightning-style checkpoint that ``umsi-eval``, ``init_ckpt=`` and prediction load (weights only), with
    its model card (the released input size and preprocessing: ``umsi_official``'s default card; source: the
    Keras file's name and SHA-256)."""
    model = official_model_config(len(class_names))
    name = model.pop(ARCHITECTURE_KEY)
    card = default_card(name).replace(
        model_args=model,
        class_names=tuple(class_names),
        name=OFFICIAL_NAME,
        source={"kind": "converted", "file": keras.path.name, "sha256": keras.sha256},
    )
    return {
        "state_dict": {f"model.{k}": v for k, v in state.items()},
        CARD_KEY: card.to_dict(),
        "hyper_parameters": {"model": {ARCHITECTURE_KEY: name, **model}, "class_names": list(class_names)},
        "umsi_conversion": {
            "source_file": keras.path.name,
            "source_sha256": keras.sha256,
            "keras_attributes": dict(keras.attributes),
            "keras_values": keras.values,
            "class_order_given": class_order_given,
            "converted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
        "epoch": 0,
        "global_step": 0,
        "pytorch-lightning_version": pl.__version__,
    }


def checkpoint_from_keras(source: str | Path, class_order: str | None = None, num_classes: int = 6) -> dict[str, Any]:
    """Read and convert a Keras ``.h5`` in memory: the checkpoint ``convert`` would write."""
    class_names, given = parse_class_order(class_order, num_classes)
    keras = read_keras_h5(source)
    state, _ = convert_keras_file(keras, num_classes)
    return build_checkpoint(keras, state, class_names, given)


def convert(
    source: str | Path,
    output: str | Path,
    class_order: str | None = None,
    num_classes: int = 6,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Read ``source`` (.h5), convert, check and write ``output`` atomically; returns the checkpoint."""
    output = Path(output)
    if output.exists() and not overwrite:
        raise ConversionError(f"{output} exists; pass --overwrite to replace it")
    checkpoint = checkpoint_from_keras(source, class_order, num_classes)
    atomic_write(output, lambda tmp: torch.save(checkpoint, tmp))
    return checkpoint
