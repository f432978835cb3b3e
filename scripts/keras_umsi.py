"""The released UMSI network in TensorFlow/Keras, for side-by-side timing (run by ``scripts/bench_keras.py``).

Runs in the TensorFlow venv (``scripts/make_tf_venv.sh``), not in the umsi one: it needs TensorFlow, h5py and
NumPy only and imports nothing from umsi. The graph is written from ``shared/docs/umsi-reference.md`` §1 (Keras
Xception with the four stride changes, global branch, ASPP, fusion, decoder) with the released layer names, so the
weights of a Keras 2.3.1 ``.h5`` (the released file, or the synthetic one of ``tests/keras_h5.py``) load by layer
and variable name with h5py. Two details keep Keras 2.3.1 / TF 1.14 numerics on TensorFlow 2: the ×2/×2/×4
upsamplings call TF1 ``resize_bilinear`` (``half_pixel_centers=False``; TF2's ``UpSampling2D`` is half-pixel), and
the class-conditioning vector is tiled to the ASPP grid of the input (the released Lambda is fixed to 30×40).

``python keras_umsi.py --serve --h5 FILE --threads N`` answers requests on stdin/stdout: one JSON line, then for
``forward`` one ``.npy`` payload (NHWC float32 batch, preprocessed like ``Predictor.preprocess``) of the byte
length the header gives; the reply is a JSON line with the wall and CPU (process) seconds of each call, then two
``.npy`` payloads (maps (B, 2H, 2W), class probabilities (B, K)).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py
import numpy as np
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers

ENCODER_EPS = 1e-3  # Keras BatchNormalization default (Xception)
HEAD_EPS = 1e-5  # the head's BatchNormalizations (umsi-reference §1.3)


class ResizeBilinearTF1(layers.Layer):
    """Keras 2.3.1 ``UpSampling2D(interpolation="bilinear")``: TF1 ``resize_bilinear`` with legacy coordinates."""

    def __init__(self, factor: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x: tf.Tensor) -> tf.Tensor:
        size = tf.shape(x)[1:3] * self.factor
        return tf.raw_ops.ResizeBilinear(images=x, size=size, align_corners=False, half_pixel_centers=False)


class TileToGrid(layers.Layer):
    """The released ``lambda_1``: the (B, C) fusion vector repeated over the (h, w) grid of the ASPP output."""

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        vector, grid = inputs
        shape = tf.shape(grid)
        return tf.broadcast_to(vector[:, None, None, :], [shape[0], shape[1], shape[2], tf.shape(vector)[1]])


def _bn(x: tf.Tensor, name: str, eps: float = ENCODER_EPS) -> tf.Tensor:
    return layers.BatchNormalization(epsilon=eps, momentum=0.99, name=name)(x)


def _sep(x: tf.Tensor, filters: int, name: str) -> tf.Tensor:
    return layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=name)(x)


def _relu(x: tf.Tensor, name: str) -> tf.Tensor:
    return layers.Activation("relu", name=name)(x)


def _residual_block(x: tf.Tensor, block: int, widths: tuple[int, int], stride: int, idx: int) -> tf.Tensor:
    skip = layers.Conv2D(widths[1], 1, strides=stride, padding="same", use_bias=False, name=f"conv2d_{idx}")(x)
    skip = _bn(skip, f"batch_normalization_{idx}")
    if block != 2:  # block 2's input is already block1_conv2_act
        x = _relu(x, f"block{block}_sepconv1_act")
    x = _bn(_sep(x, widths[0], f"block{block}_sepconv1"), f"block{block}_sepconv1_bn")
    x = _relu(x, f"block{block}_sepconv2_act")
    x = _bn(_sep(x, widths[1], f"block{block}_sepconv2"), f"block{block}_sepconv2_bn")
    x = layers.MaxPooling2D(3, strides=stride, padding="same", name=f"block{block}_pool")(x)
    return layers.Add()([x, skip])


def build_umsi(input_shape: tuple[int, int, int] = (240, 320, 3), num_classes: int = 6) -> keras.Model:
    """The released ``xception_cl_fus_aspp``: image (B, H, W, 3) → [map (B, 2H, 2W, 1), probabilities (B, K)]."""
    image = keras.Input(input_shape, name="input_1")
    x = layers.Conv2D(32, 3, strides=2, use_bias=False, name="block1_conv1")(image)
    x = _relu(_bn(x, "block1_conv1_bn"), "block1_conv1_act")
    x = layers.Conv2D(64, 3, use_bias=False, name="block1_conv2")(x)
    x = _relu(_bn(x, "block1_conv2_bn"), "block1_conv2_act")
    x = _residual_block(x, 2, (128, 128), 2, 1)
    x = _residual_block(x, 3, (256, 256), 2, 2)
    x = _residual_block(x, 4, (728, 728), 1, 3)  # stride 1 in UMSI (2 in Keras Xception)
    for block in range(5, 13):
        y = x
        for i in (1, 2, 3):
            y = _relu(y, f"block{block}_sepconv{i}_act")
            y = _bn(_sep(y, 728, f"block{block}_sepconv{i}"), f"block{block}_sepconv{i}_bn")
        x = layers.Add()([x, y])
    x = _residual_block(x, 13, (728, 1024), 1, 4)  # stride 1 in UMSI
    x = _relu(_bn(_sep(x, 1536, "block14_sepconv1"), "block14_sepconv1_bn"), "block14_sepconv1_act")
    features = _relu(_bn(_sep(x, 2048, "block14_sepconv2"), "block14_sepconv2_bn"), "block14_sepconv2_act")

    g = layers.Conv2D(256, 3, strides=3, padding="same", use_bias=False, name="global_conv")(features)
    g = layers.Dropout(0.3)(layers.ReLU()(_bn(g, "global_BN", HEAD_EPS)))
    g = layers.Dropout(0.3)(layers.Dense(256, name="global_dense")(layers.GlobalAveragePooling2D()(g)))
    probabilities = layers.Dense(num_classes, activation="softmax", name="out_classif")(g)

    branch0 = layers.Conv2D(256, 1, use_bias=False, name="aspp_csep0")(features)
    branches = [_relu(_bn(branch0, "aspp0_BN", HEAD_EPS), "aspp0_activation")]
    for d in (6, 12, 18):
        name = f"aspp_csepd{d}"
        depthwise = layers.DepthwiseConv2D(3, padding="same", dilation_rate=d, use_bias=False, name=f"{name}_depthwise")
        y = depthwise(features)
        y = layers.ReLU()(_bn(y, f"{name}_depthwise_BN", HEAD_EPS))
        y = layers.Conv2D(256, 1, use_bias=False, name=f"{name}_pointwise")(y)
        branches.append(layers.ReLU()(_bn(y, f"{name}_pointwise_BN", HEAD_EPS)))
    aspp = layers.Concatenate()(branches)
    fusion = TileToGrid()([layers.Dense(256, name="dense_fusion")(g), aspp])
    x = layers.Conv2D(256, 1, use_bias=False, name="concat_projection")(layers.Concatenate()([aspp, fusion]))
    x = layers.Dropout(0.3)(layers.ReLU()(_bn(x, "concat_projection_BN", HEAD_EPS)))

    stages = ((("dec_c1", 256), ("dec_c2", 256)), (("dec_c3", 128), ("dec_c4", 128)), (("dec_c5", 64),))
    for stage, factor in zip(stages, (2, 2, 4), strict=True):
        for name, filters in stage:
            x = layers.Conv2D(filters, 3, padding="same", dilation_rate=2, activation="relu", name=name)(x)
        x = ResizeBilinearTF1(factor)(layers.Dropout(0.3)(x))
    saliency = layers.Conv2D(1, 1, activation="relu", name="dec_c_out")(x)
    return keras.Model(image, [saliency, probabilities], name="model_1")


def load_h5_weights(model: keras.Model, path: str) -> int:
    """Set every weighted layer from a Keras 2.3.1 ``.h5`` (full model or ``save_weights`` layout), matching layers
    by name and taking their variables in the file's ``weight_names`` order (Keras 2 and 3 create them in the same
    order; Keras 3 only renames ``depthwise_kernel`` to ``kernel``); returns the number of values loaded.
    KeyError/ValueError name the layer when the file does not fit the graph."""
    loaded = 0
    with h5py.File(path, "r") as f:
        root = f.get("model_weights", f)
        for layer in model.layers:
            if not layer.weights:
                continue
            if layer.name not in root:
                raise KeyError(f"{path}: no weights for layer {layer.name!r}")
            group = root[layer.name]
            names = [raw.decode() if isinstance(raw, bytes) else str(raw) for raw in group.attrs["weight_names"]]
            values = [np.asarray(group[name]) for name in names]
            expected = [tuple(variable.shape) for variable in layer.weights]
            if [v.shape for v in values] != expected:
                raise ValueError(f"{path}: layer {layer.name!r} holds {[v.shape for v in values]}, expected {expected}")
            layer.set_weights(values)
            loaded += sum(v.size for v in values)
    return loaded


def _read_exact(stream: io.BufferedReader, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError("request truncated")
    return data


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def serve(model: keras.Model) -> None:
    """Request loop on stdin/stdout (see the module docstring); ``{"cmd": "quit"}`` or EOF ends it."""
    forward = tf.function(lambda x: model(x, training=False), jit_compile=False, reduce_retracing=True)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        line = stdin.readline()
        if not line:
            return
        request = json.loads(line)
        if request["cmd"] == "quit":
            return
        batch = np.load(io.BytesIO(_read_exact(stdin, int(request["nbytes"]))), allow_pickle=False)
        x = tf.constant(batch)
        seconds, cpu_seconds = [], []
        for _ in range(int(request.get("repeats", 1))):
            start, cpu_start = time.perf_counter(), time.process_time()
            saliency, probabilities = forward(x)
            maps, probs = saliency.numpy()[..., 0], probabilities.numpy()  # .numpy() waits for the result
            seconds.append(time.perf_counter() - start)
            cpu_seconds.append(time.process_time() - cpu_start)
        payloads = [_npy_bytes(maps), _npy_bytes(probs)]
        header = {"seconds": seconds, "cpu_seconds": cpu_seconds, "nbytes": [len(p) for p in payloads]}
        stdout.write((json.dumps(header) + "\n").encode())
        for payload in payloads:
            stdout.write(payload)
        stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--h5", required=True, help="Keras 2.3.1 .h5 of the released UMSI (or the synthetic one)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="TensorFlow intra-op threads")
    parser.add_argument("--inter-op-threads", type=int, default=1, help="TensorFlow inter-op threads")
    parser.add_argument("--input-size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    parser.add_argument("--serve", action="store_true", help="answer requests on stdin (bench_keras.py)")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    model = build_umsi((*args.input_size, 3))
    loaded = load_h5_weights(model, args.h5)
    info = {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "values_loaded": loaded,
        "intra_op_threads": args.threads,
        "inter_op_threads": args.inter_op_threads,
        "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
    }
    if not args.serve:
        print(json.dumps(info))
        return
    sys.stdout.buffer.write((json.dumps(info) + "\n").encode())
    sys.stdout.buffer.flush()
    serve(model)


if __name__ == "__main__":
    main()
