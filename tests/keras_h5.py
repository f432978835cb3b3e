"""Synthetic Keras 2.3.1 `.h5` files of the released UMSI network (random float32 weights), written with h5py only.

Built from the rules in ``shared/docs/umsi-reference.md`` §1–§2 (layer names, variable shapes, HDF5 layout), not
from any code in ``src/``, so that the converter under test is checked against an independent description.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

Var = tuple[str, tuple[int, ...]]
KerasLayer = tuple[str, str, list[Var]]

INPUT_SHAPE = (240, 320, 3)
ENCODER_BN_EPS = 1e-3
HEAD_BN_EPS = 1e-5
DROPOUT = 0.3
# fixed-length byte strings, as h5py 2.x wrote Keras' `b"..."` attributes (h5py 3 reads them back as np.bytes_)
KERAS_VERSION = np.bytes_(b"2.3.1")
BACKEND = np.bytes_(b"tensorflow")


def _conv(
    name: str,
    k: int,
    cin: int,
    cout: int,
    *,
    stride: int = 1,
    dilation: int = 1,
    padding: str = "same",
    bias: bool = False,
    activation: str = "linear",
) -> tuple[str, str, list[Var], dict[str, Any]]:
    variables: list[Var] = [("kernel", (k, k, cin, cout))] + ([("bias", (cout,))] if bias else [])
    config = {
        "filters": cout,
        "kernel_size": [k, k],
        "strides": [stride, stride],
        "padding": padding,
        "data_format": "channels_last",
        "dilation_rate": [dilation, dilation],
        "activation": activation,
        "use_bias": bias,
    }
    return name, "Conv2D", variables, config


def _sep(name: str, cin: int, cout: int) -> tuple[str, str, list[Var], dict[str, Any]]:
    variables: list[Var] = [("depthwise_kernel", (3, 3, cin, 1)), ("pointwise_kernel", (1, 1, cin, cout))]
    config = {
        "filters": cout,
        "kernel_size": [3, 3],
        "strides": [1, 1],
        "padding": "same",
        "data_format": "channels_last",
        "dilation_rate": [1, 1],
        "depth_multiplier": 1,
        "activation": "linear",
        "use_bias": False,
    }
    return name, "SeparableConv2D", variables, config


def _dw(name: str, c: int, dilation: int) -> tuple[str, str, list[Var], dict[str, Any]]:
    config = {
        "kernel_size": [3, 3],
        "strides": [1, 1],
        "padding": "same",
        "data_format": "channels_last",
        "dilation_rate": [dilation, dilation],
        "depth_multiplier": 1,
        "activation": "linear",
        "use_bias": False,
    }
    return name, "DepthwiseConv2D", [("depthwise_kernel", (3, 3, c, 1))], config


def _bn(name: str, c: int, eps: float) -> tuple[str, str, list[Var], dict[str, Any]]:
    variables: list[Var] = [(v, (c,)) for v in ("gamma", "beta", "moving_mean", "moving_variance")]
    config = {"axis": -1, "momentum": 0.99, "epsilon": eps, "center": True, "scale": True}
    return name, "BatchNormalization", variables, config


def _dense(
    name: str, n_in: int, n_out: int, activation: str = "linear", trainable: bool = True
) -> tuple[str, str, list[Var], dict[str, Any]]:
    config = {"units": n_out, "activation": activation, "use_bias": True, "trainable": trainable}
    return name, "Dense", [("kernel", (n_in, n_out)), ("bias", (n_out,))], config


def _relu(name: str) -> tuple[str, str, list[Var], dict[str, Any]]:
    return name, "Activation", [], {"activation": "relu"}


def _pool(name: str, stride: int) -> tuple[str, str, list[Var], dict[str, Any]]:
    config = {"pool_size": [3, 3], "strides": [stride, stride], "padding": "same", "data_format": "channels_last"}
    return name, "MaxPooling2D", [], config


def _plain(name: str, class_name: str, **config: Any) -> tuple[str, str, list[Var], dict[str, Any]]:
    return name, class_name, [], config


def _layer_specs(num_classes: int = 6) -> list[dict[str, Any]]:
    """All 181 layers in ``model.layers`` order: dicts with name, class_name, vars, config, inputs."""
    specs: list[dict[str, Any]] = []

    def add(spec: tuple[str, str, list[Var], dict[str, Any]], *inputs: str) -> str:
        name, class_name, variables, config = spec
        specs.append({"name": name, "class_name": class_name, "vars": variables, "config": config, "inputs": inputs})
        return name

    enc = ENCODER_BN_EPS
    add(_plain("input_1", "InputLayer", batch_input_shape=[None, *INPUT_SHAPE], dtype="float32", sparse=False))
    # block 1: two valid 3×3 convs
    x = add(_conv("block1_conv1", 3, 3, 32, stride=2, padding="valid"), "input_1")
    x = add(_bn("block1_conv1_bn", 32, enc), x)
    x = add(_relu("block1_conv1_act"), x)
    x = add(_conv("block1_conv2", 3, 32, 64, padding="valid"), x)
    x = add(_bn("block1_conv2_bn", 64, enc), x)
    x = add(_relu("block1_conv2_act"), x)

    def residual_block(x: str, block: int, cin: int, cmid: int, cout: int, stride: int, idx: int, add_idx: int) -> str:
        """Main branch [ReLU] → SepConv → BN → ReLU → SepConv → BN → MaxPool, residual 1×1 conv → BN, then Add."""
        inp = x
        if block != 2:  # block 2's input is already block1_conv2_act
            x = add(_relu(f"block{block}_sepconv1_act"), x)
        x = add(_sep(f"block{block}_sepconv1", cin, cmid), x)
        x = add(_bn(f"block{block}_sepconv1_bn", cmid, enc), x)
        x = add(_relu(f"block{block}_sepconv2_act"), x)
        x = add(_sep(f"block{block}_sepconv2", cmid, cout), x)
        x = add(_bn(f"block{block}_sepconv2_bn", cout, enc), x)
        r = add(_conv(f"conv2d_{idx}", 1, cin, cout, stride=stride), inp)
        x = add(_pool(f"block{block}_pool", stride), x)
        r = add(_bn(f"batch_normalization_{idx}", cout, enc), r)
        return add(_plain(f"add_{add_idx}", "Add"), x, r)

    # entry flow: blocks 2-4 (strides 2, 2, 1)
    x = residual_block(x, 2, 64, 128, 128, 2, 1, 1)
    x = residual_block(x, 3, 128, 256, 256, 2, 2, 2)
    x = residual_block(x, 4, 256, 728, 728, 1, 3, 3)
    # middle flow: blocks 5-12, identity residuals add_4..add_11
    for b in range(5, 13):
        prev = x
        for j in (1, 2, 3):
            x = add(_relu(f"block{b}_sepconv{j}_act"), x)
            x = add(_sep(f"block{b}_sepconv{j}", 728, 728), x)
            x = add(_bn(f"block{b}_sepconv{j}_bn", 728, enc), x)
        x = add(_plain(f"add_{b - 1}", "Add"), x, prev)
    # exit flow: block 13 (stride 1)
    x = residual_block(x, 13, 728, 728, 1024, 1, 4, 12)

    # block 14 (no residual, activations after the BNs)
    x = add(_sep("block14_sepconv1", 1024, 1536), x)
    x = add(_bn("block14_sepconv1_bn", 1536, enc), x)
    x = add(_relu("block14_sepconv1_act"), x)
    x = add(_sep("block14_sepconv2", 1536, 2048), x)
    x = add(_bn("block14_sepconv2_bn", 2048, enc), x)
    feat = add(_relu("block14_sepconv2_act"), x)

    # head, interleaved by graph depth as Keras orders `model.layers`
    dils = (6, 12, 18)
    head = HEAD_BN_EPS
    add(_conv("global_conv", 3, 2048, 256, stride=3), feat)
    add(_bn("global_BN", 256, head), "global_conv")
    for d in dils:
        add(_dw(f"aspp_csepd{d}_depthwise", 2048, d), feat)
    add(_relu("activation_1"), "global_BN")
    for d in dils:
        add(_bn(f"aspp_csepd{d}_depthwise_BN", 2048, head), f"aspp_csepd{d}_depthwise")
    add(_plain("dropout_1", "Dropout", rate=DROPOUT), "activation_1")
    for i, d in enumerate(dils):
        add(_relu(f"activation_{2 + 2 * i}"), f"aspp_csepd{d}_depthwise_BN")
    add(_plain("global_average_pooling2d_1", "GlobalAveragePooling2D", data_format="channels_last"), "dropout_1")
    add(_conv("aspp_csep0", 1, 2048, 256), feat)
    for i, d in enumerate(dils):
        add(_conv(f"aspp_csepd{d}_pointwise", 1, 2048, 256), f"activation_{2 + 2 * i}")
    add(_dense("global_dense", 256, 256), "global_average_pooling2d_1")
    add(_bn("aspp0_BN", 256, head), "aspp_csep0")
    for d in dils:
        add(_bn(f"aspp_csepd{d}_pointwise_BN", 256, head), f"aspp_csepd{d}_pointwise")
    add(_plain("dropout_2", "Dropout", rate=DROPOUT), "global_dense")
    add(_relu("aspp0_activation"), "aspp0_BN")
    for i, d in enumerate(dils):
        add(_relu(f"activation_{3 + 2 * i}"), f"aspp_csepd{d}_pointwise_BN")
    add(_dense("dense_fusion", 256, 256), "dropout_2")
    add(
        _plain("concatenate_1", "Concatenate", axis=-1),
        "aspp0_activation",
        "activation_3",
        "activation_5",
        "activation_7",
    )
    lambda_cfg = {"function": ["<marshalled bytecode>", None, None], "function_type": "lambda", "output_shape": None}
    add(_plain("lambda_1", "Lambda", **lambda_cfg), "dense_fusion")
    x = add(_plain("concatenate_2", "Concatenate", axis=-1), "concatenate_1", "lambda_1")
    x = add(_conv("concat_projection", 1, 1280, 256), x)
    x = add(_bn("concat_projection_BN", 256, head), x)
    x = add(_relu("activation_8"), x)
    x = add(_plain("dropout_3", "Dropout", rate=DROPOUT), x)

    # decoder
    x = add(_conv("dec_c1", 3, 256, 256, dilation=2, bias=True, activation="relu"), x)
    x = add(_conv("dec_c2", 3, 256, 256, dilation=2, bias=True, activation="relu"), x)
    x = add(_plain("dec_dp1", "Dropout", rate=DROPOUT), x)
    x = add(_plain("dec_ups1", "UpSampling2D", size=[2, 2], interpolation="bilinear", data_format="channels_last"), x)
    x = add(_conv("dec_c3", 3, 256, 128, dilation=2, bias=True, activation="relu"), x)
    x = add(_conv("dec_c4", 3, 128, 128, dilation=2, bias=True, activation="relu"), x)
    x = add(_plain("dec_dp2", "Dropout", rate=DROPOUT), x)
    x = add(_plain("dec_ups2", "UpSampling2D", size=[2, 2], interpolation="bilinear", data_format="channels_last"), x)
    x = add(_conv("dec_c5", 3, 128, 64, dilation=2, bias=True, activation="relu"), x)
    x = add(_plain("dec_dp3", "Dropout", rate=DROPOUT), x)
    x = add(_plain("dec_ups3", "UpSampling2D", size=[4, 4], interpolation="bilinear", data_format="channels_last"), x)
    add(_conv("dec_c_out", 1, 64, 1, bias=True, activation="relu"), x)
    add(_dense("out_classif", 256, num_classes, activation="softmax", trainable=False), "dropout_2")
    return specs


def official_keras_layers(num_classes: int = 6) -> list[KerasLayer]:
    """The 181 layers of the released model in file (``model.layers``) order: (name, Keras class, [(var, shape)]).

    107 layers carry weights (variables in creation order, Keras shapes), 74 are weightless (empty list).
    """
    return [(s["name"], s["class_name"], list(s["vars"])) for s in _layer_specs(num_classes)]


def _random_value(rng: np.random.Generator, var: str, shape: tuple[int, ...]) -> np.ndarray:
    if var == "gamma" or var == "moving_variance":
        return rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
    if var in ("beta", "moving_mean"):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.1).astype(np.float32)
    return (rng.standard_normal(shape, dtype=np.float32) * 0.05).astype(np.float32)  # kernels and biases


def _model_config(specs: list[dict[str, Any]], rename: Mapping[str, str]) -> str:
    def nm(name: str) -> str:
        return rename.get(name, name)

    layers = []
    for s in specs:
        config = {"name": nm(s["name"]), "trainable": True, "dtype": "float32", **s["config"]}
        inbound = [[[nm(i), 0, 0, {}] for i in s["inputs"]]] if s["inputs"] else []
        layers.append(
            {"name": nm(s["name"]), "class_name": s["class_name"], "config": config, "inbound_nodes": inbound}
        )
    config = {
        "name": "model_1",
        "layers": layers,
        "input_layers": [[nm("input_1"), 0, 0]],
        "output_layers": [[nm("dec_c_out"), 0, 0], [nm("out_classif"), 0, 0]],
    }
    return json.dumps({"class_name": "Model", "config": config})


def write_keras_h5(
    path: str | Path,
    seed: int = 0,
    num_classes: int = 6,
    drop_layers: Iterable[str] = (),
    rename: Mapping[str, str] | None = None,
    weights_only: bool = False,
    model_config: bool = True,
    scope_suffix: str = "",
) -> dict[str, dict[str, np.ndarray]]:
    """Write a Keras-2.3.1-style ``.h5`` of the released UMSI model with random weights; return what was written.

    Full-model layout (default): root attrs ``model_config`` (JSON str), ``keras_version``, ``backend``; group
    ``model_weights`` with attrs ``layer_names``/``backend``/``keras_version`` and one group per layer holding attr
    ``weight_names`` and datasets ``<layer>/<layer><scope_suffix>/<var>:0``. ``weights_only=True`` writes the
    ``save_weights`` layout instead (layer groups at the root, no ``model_config``). ``drop_layers`` (original names)
    are omitted everywhere; ``rename`` maps original → new layer names (model_config included). Returns
    ``{layer_name: {var: array}}`` with Keras shapes for every written weighted layer, under the new names.
    """
    rename = dict(rename or {})
    drop = set(drop_layers)
    specs = [s for s in _layer_specs(num_classes) if s["name"] not in drop]
    rng = np.random.default_rng(seed)
    written: dict[str, dict[str, np.ndarray]] = {}
    layer_names = [rename.get(s["name"], s["name"]) for s in specs]
    with h5py.File(path, "w") as f:
        if weights_only:
            root = f
        else:
            if model_config:
                f.attrs["model_config"] = _model_config(specs, rename)
            f.attrs["keras_version"] = KERAS_VERSION
            f.attrs["backend"] = BACKEND
            root = f.create_group("model_weights")
        root.attrs["layer_names"] = np.array([n.encode("utf8") for n in layer_names])
        root.attrs["backend"] = BACKEND
        root.attrs["keras_version"] = KERAS_VERSION
        for s, name in zip(specs, layer_names, strict=True):
            group = root.create_group(name)
            scope = f"{name}{scope_suffix}"
            weight_names = [f"{scope}/{var}:0".encode() for var, _ in s["vars"]]
            # Keras stores `np.asarray(list_of_bytes)`; an empty list becomes an empty float64 array
            group.attrs["weight_names"] = np.array(weight_names) if weight_names else np.array([], dtype=np.float64)
            if s["vars"]:
                written[name] = {}
            for var, shape in s["vars"]:
                value = _random_value(rng, var, shape)
                group.create_dataset(f"{scope}/{var}:0", data=value)
                written[name][var] = value
    return written
