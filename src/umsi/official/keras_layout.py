"""Where each of the released model's 107 weighted Keras layers lives in ``UMSI.official()``.

Keras names follow ``keras.applications`` Xception (``block1_conv1`` … ``block14_sepconv2_bn``) and the UMSI head
(umsi-reference §2.3). The four residual 1×1 convs and their BatchNorms are unnamed in the Keras code, so Keras
numbered them (``conv2d_1..4``, ``batch_normalization_1..4`` in the released file); they are listed here under
those canonical names and matched to the file's auto-numbered layers by order.
"""

from __future__ import annotations

from typing import NamedTuple

CONV, SEPARABLE, DEPTHWISE, BATCHNORM, DENSE = (
    "Conv2D",
    "SeparableConv2D",
    "DepthwiseConv2D",
    "BatchNormalization",
    "Dense",
)

# Keras variables of each layer type, in creation order, and the PyTorch tensor each one fills.
KERAS_VARIABLES: dict[str, dict[str, str]] = {
    CONV: {"kernel": "weight", "bias": "bias"},
    SEPARABLE: {"depthwise_kernel": "conv1.weight", "pointwise_kernel": "pointwise.weight"},
    DEPTHWISE: {"depthwise_kernel": "weight"},
    BATCHNORM: {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"},
    DENSE: {"kernel": "weight", "bias": "bias"},
}
OPTIONAL_VARIABLES = {(CONV, "bias")}  # Keras convs with use_bias=False store only the kernel

# Keras block k (2..13) is timm legacy_xception block k−1; the residual convs of Keras blocks 2, 3, 4 and 13.
RESIDUAL_BLOCKS = (2, 3, 4, 13)
MIDDLE_BLOCKS = range(5, 13)
ENCODER = "encoder.body"
KERAS_PARAMETERS = 29_920_687  # what Keras reports for the released file (BN moving statistics included)


class KerasLayer(NamedTuple):
    """One weighted Keras layer: its name, Keras type and the PyTorch module path it maps to."""

    name: str
    keras_type: str
    module: str


def _encoder_layers() -> list[KerasLayer]:
    layers = [
        KerasLayer("block1_conv1", CONV, f"{ENCODER}.conv1"),
        KerasLayer("block1_conv1_bn", BATCHNORM, f"{ENCODER}.bn1"),
        KerasLayer("block1_conv2", CONV, f"{ENCODER}.conv2"),
        KerasLayer("block1_conv2_bn", BATCHNORM, f"{ENCODER}.bn2"),
    ]
    for block in range(2, 14):
        timm_block = f"{ENCODER}.block{block - 1}"
        separables = 3 if block in MIDDLE_BLOCKS else 2
        # timm's rep: [ReLU]? then (SeparableConv, BN, ReLU)×n with the last ReLU replaced by the pool/end;
        # Keras block 2 has no leading ReLU (its input is already activated).
        offset = 0 if block == 2 else 1
        for i in range(separables):
            layers.append(KerasLayer(f"block{block}_sepconv{i + 1}", SEPARABLE, f"{timm_block}.rep.{offset + 3 * i}"))
            layers.append(
                KerasLayer(f"block{block}_sepconv{i + 1}_bn", BATCHNORM, f"{timm_block}.rep.{offset + 3 * i + 1}")
            )
        if block in RESIDUAL_BLOCKS:
            n = RESIDUAL_BLOCKS.index(block) + 1
            layers.append(KerasLayer(f"conv2d_{n}", CONV, f"{timm_block}.skip"))
            layers.append(KerasLayer(f"batch_normalization_{n}", BATCHNORM, f"{timm_block}.skipbn"))
    layers += [
        KerasLayer("block14_sepconv1", SEPARABLE, f"{ENCODER}.conv3"),
        KerasLayer("block14_sepconv1_bn", BATCHNORM, f"{ENCODER}.bn3"),
        KerasLayer("block14_sepconv2", SEPARABLE, f"{ENCODER}.conv4"),
        KerasLayer("block14_sepconv2_bn", BATCHNORM, f"{ENCODER}.bn4"),
    ]
    return layers


def _head_layers(aspp_dilations: tuple[int, ...] = (6, 12, 18)) -> list[KerasLayer]:
    layers = [
        KerasLayer("global_conv", CONV, "global_branch.conv.0"),
        KerasLayer("global_BN", BATCHNORM, "global_branch.conv.1"),
        KerasLayer("global_dense", DENSE, "global_branch.dense"),
        KerasLayer("out_classif", DENSE, "classifier"),
        KerasLayer("aspp_csep0", CONV, "aspp.branches.0.0"),
        KerasLayer("aspp0_BN", BATCHNORM, "aspp.branches.0.1"),
    ]
    for i, d in enumerate(aspp_dilations, start=1):
        layers += [
            KerasLayer(f"aspp_csepd{d}_depthwise", DEPTHWISE, f"aspp.branches.{i}.0"),
            KerasLayer(f"aspp_csepd{d}_depthwise_BN", BATCHNORM, f"aspp.branches.{i}.1"),
            KerasLayer(f"aspp_csepd{d}_pointwise", CONV, f"aspp.branches.{i}.3.0"),
            KerasLayer(f"aspp_csepd{d}_pointwise_BN", BATCHNORM, f"aspp.branches.{i}.3.1"),
        ]
    layers += [
        KerasLayer("dense_fusion", DENSE, "fusion.dense"),
        KerasLayer("concat_projection", CONV, "fusion.projection.0"),
        KerasLayer("concat_projection_BN", BATCHNORM, "fusion.projection.1"),
        # decoder stages: [conv, ReLU, conv, ReLU, dropout], [conv, ReLU, conv, ReLU, dropout], [conv, ReLU, dropout]
        KerasLayer("dec_c1", CONV, "decoder.stages.0.0"),
        KerasLayer("dec_c2", CONV, "decoder.stages.0.2"),
        KerasLayer("dec_c3", CONV, "decoder.stages.1.0"),
        KerasLayer("dec_c4", CONV, "decoder.stages.1.2"),
        KerasLayer("dec_c5", CONV, "decoder.stages.2.0"),
        KerasLayer("dec_c_out", CONV, "decoder.head"),
    ]
    return layers


def official_layers() -> list[KerasLayer]:
    """The 107 weighted layers of the released UMSI file (encoder first, then the head)."""
    return _encoder_layers() + _head_layers()


def is_auto_named(name: str, keras_type: str) -> bool:
    """Keras' automatic names for unnamed layers (``conv2d_7``, ``batch_normalization_3``)."""
    prefix = {CONV: "conv2d_", BATCHNORM: "batch_normalization_"}.get(keras_type)
    return prefix is not None and name.startswith(prefix) and name[len(prefix) :].isdigit()
