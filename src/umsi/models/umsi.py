"""UMSI: encoder → (global branch ‖ ASPP) → class-conditioned fusion → decoder, plus a classifier."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from umsi.models.encoder import LEGACY_XCEPTION, build_encoder
from umsi.models.heads import ASPP, Decoder, GlobalBranch, GlobalFusion
from umsi.models.registry import register_model
from umsi.models.tf_ops import configure_batchnorm

# The released network's numerics (umsi-reference §2.4): Keras BN ε 1e-3 in the encoder (1e-5 in the head, the
# PyTorch default), Keras momentum 0.99, TensorFlow "same" padding and TF1 legacy bilinear upsampling.
OFFICIAL_NUMERICS = dict(tf_same_padding=True, upsampling="tf1_legacy", encoder_bn_eps=1e-3, bn_momentum=0.01)
# The released network's six dropout layers by site (Keras names): dropout_1 after the global conv, dropout_2 after
# the global dense layer (on g), dropout_3 after the concat projection, dec_dp1..3 after each decoder stage.
DROPOUT_SITES = ("global_conv", "global_dense", "projection", "decoder")


def dropout_sites(dropout: float | Mapping[str, Any], num_decoder_stages: int) -> dict[str, Any]:
    """The dropout rate of each site: ``{global_conv, global_dense, projection: rate, decoder: [rate per stage]}``.

    ``dropout`` is one rate for all six of the released network's dropouts (``0.3`` = the release), or a mapping
    with every key of :data:`DROPOUT_SITES` (``decoder``: one rate, or one per decoder stage). Rates are in [0, 1);
    0 removes the site's dropout. Raises ``ValueError`` naming the ``model.dropout`` key at fault."""
    if isinstance(dropout, (int, float)):
        sites: dict[str, Any] = {site: float(dropout) for site in DROPOUT_SITES}
    else:
        sites = dict(dropout)
        unknown = sorted(set(sites) - set(DROPOUT_SITES))
        missing = [site for site in DROPOUT_SITES if site not in sites]
        if unknown or missing:
            raise ValueError(
                f"model.dropout: unknown sites {unknown}, missing sites {missing}; give a rate for each of "
                f"{', '.join(DROPOUT_SITES)} (decoder: one rate or one per stage), or one number for all"
            )
    decoder = sites["decoder"]
    decoder = [decoder] * num_decoder_stages if isinstance(decoder, (int, float)) else list(decoder)
    named = [(site, sites[site]) for site in DROPOUT_SITES[:3]] + [(f"decoder[{i}]", r) for i, r in enumerate(decoder)]
    for site, rate in named:
        if not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise ValueError(f"model.dropout.{site}={rate}: a dropout rate must be a number in [0, 1)")
    return {site: float(sites[site]) for site in DROPOUT_SITES[:3]} | {"decoder": [float(r) for r in decoder]}


class UMSIOutput(NamedTuple):
    """saliency: (B, 1, s·H, s·W) non-negative, un-normalised map (s = output_scale, 2 by default);
    logits: (B, num_classes) class scores before softmax."""

    saliency: torch.Tensor
    logits: torch.Tensor


class UMSI(nn.Module):
    """Unified Model of Saliency and Importance.

    ``UMSI()`` builds the network shaped like the released one: timm ``legacy_xception`` at output stride 8
    (official stride change), 256-wide heads, dropout 0.3 at the release's six sites (``dropout`` takes a rate
    per site, see :func:`dropout_sites`), ASPP dilations 6/12/18, decoder dilation 2, 6 classes and a map at twice
    the input size. Any input of at least ``min_input_size`` pixels per side works (7 for ``legacy_xception``, whose
    first two convolutions are unpadded): the grids follow the input. The encoder starts from random weights,
    ``pretrained_file`` (a local timm state dict) or, with ``pretrained=True``, timm's ImageNet weights.
    ``encoder`` may be any timm model with ``features_only`` (see :class:`~umsi.models.encoder.TimmEncoder`): ASPP
    and the global branch take its deepest feature, at ``output_stride`` where the model supports it, else at its
    own stride (``encoder_stride``), which the decoder's first upsampling follows.
    ``UMSI.official()`` is the released Keras network exactly (same layers plus its padding, upsampling and
    BatchNorm numerics), the target of ``umsi-convert-keras``.
    """

    def __init__(
        self,
        encoder: str = LEGACY_XCEPTION,
        output_stride: int = 8,
        pretrained_file: str | None = None,
        num_classes: int = 6,
        width: int = 256,
        dropout: float | Mapping[str, Any] = 0.3,
        aspp_dilations: Sequence[int] = (6, 12, 18),
        decoder_channels: Sequence[Sequence[int]] = ((256, 256), (128, 128), (64,)),
        decoder_dilation: int = 2,
        output_scale: float = 2.0,
        tf_same_padding: bool = False,
        upsampling: str = "half_pixel",
        encoder_bn_eps: float | None = None,
        bn_momentum: float | None = None,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"model.num_classes must be >= 1, got {num_classes}")
        rates = dropout_sites(dropout, len(decoder_channels))
        self.encoder = build_encoder(encoder, output_stride, pretrained_file, tf_same_padding, pretrained)
        channels = self.encoder.out_channels
        self.global_branch = GlobalBranch(
            channels, width, (rates["global_conv"], rates["global_dense"]), tf_same_padding
        )
        self.classifier = nn.Linear(width, num_classes)
        self.aspp = ASPP(channels, width, aspp_dilations)
        self.fusion = GlobalFusion(self.aspp.out_channels, width, width, rates["projection"])
        self.encoder_stride: int = self.encoder.output_stride
        self.decoder = Decoder(
            width, decoder_channels, decoder_dilation, rates["decoder"], upsampling, self.encoder_stride
        )
        configure_batchnorm(self.encoder, eps=encoder_bn_eps)
        configure_batchnorm(self, momentum=bn_momentum)
        self.num_classes = num_classes
        self.output_scale = output_scale
        self.min_input_size: int = getattr(self.encoder, "min_input_size", 1)

    @classmethod
    def official(cls, num_classes: int = 6, pretrained_file: str | None = None, pretrained: bool = False) -> UMSI:
        """The released UMSI network (``model=umsi_official``): the default layers with TF-exact numerics."""
        return cls(num_classes=num_classes, pretrained_file=pretrained_file, pretrained=pretrained, **OFFICIAL_NUMERICS)

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """Map size (rows, cols) for an input of ``input_size`` (rows, cols)."""
        return round(input_size[0] * self.output_scale), round(input_size[1] * self.output_scale)

    def forward(self, image: torch.Tensor) -> UMSIOutput:
        """image (B, 3, H, W) preprocessed → UMSIOutput(saliency (B, 1, sH, sW), logits (B, K)).

        Raises ``ValueError`` when H or W is below ``min_input_size`` (letterbox or resize such images first, as
        ``umsi.load(...).predict`` and ``umsi-predict`` do)."""
        size = (int(image.shape[-2]), int(image.shape[-1]))  # ints: traceable
        if min(size) < self.min_input_size:
            raise ValueError(
                f"UMSI input of {size[0]}×{size[1]} px is too small: the encoder needs at least "
                f"{self.min_input_size}×{self.min_input_size} px; letterbox or resize the image to at least "
                f"{self.min_input_size} px per side (in training: data.input_size)"
            )
        features = self.encoder(image)
        global_vector = self.global_branch(features)
        fused = self.fusion(self.aspp(features), global_vector)
        saliency = self.decoder(fused, self.output_size(size))
        return UMSIOutput(saliency, self.classifier(global_vector))


def without_encoder_init(model: Mapping[str, Any]) -> dict[str, Any]:
    """A model config (the ``model`` dict: ``architecture`` and keyword arguments) for weights that come from a
    checkpoint: the encoder's own initialisation (``pretrained``, ``pretrained_file``) is switched off, so that
    building the network reads and downloads no ImageNet weights only to overwrite them."""
    config = dict(model)
    if "pretrained" in config:
        config["pretrained"] = False
    if "pretrained_file" in config:
        config["pretrained_file"] = None
    return config


# The registered architectures (umsi.models.registry): conf/model/<file>.yaml names each in `architecture`.
@register_model()
def umsi(**kwargs: Any) -> UMSI:
    """``UMSI()``: the released layers with PyTorch numerics (``model=umsi``)."""
    return UMSI(**kwargs)


@register_model()
def umsi_official(**kwargs: Any) -> UMSI:
    """The released Keras network exactly (``model=umsi_official``, the target of ``umsi-convert-keras``)."""
    return UMSI(**{**OFFICIAL_NUMERICS, **kwargs})


@register_model()
def umsi_xception41(**kwargs: Any) -> UMSI:
    """UMSI on timm's aligned Xception-41 at output stride 8 (``model=xception41``)."""
    return UMSI(**{"encoder": "xception41", **kwargs})


@register_model()
def umsi_xception65_os16(**kwargs: Any) -> UMSI:
    """UMSI on timm's aligned Xception-65 at output stride 16 (``model=xception65_os16``)."""
    return UMSI(**{"encoder": "xception65", "output_stride": 16, **kwargs})


# Other timm encoders under the same heads (conf/model/<preset>.yaml); their cards default to the ImageNet
# normalisation they were trained with (training records data.preprocessing=auto's resolution).
@register_model(preprocessing="imagenet")
def umsi_convnext_tiny(**kwargs: Any) -> UMSI:
    """UMSI on timm's ConvNeXt-T at output stride 8 (``model=convnext_tiny``)."""
    return UMSI(**{"encoder": "convnext_tiny", **kwargs})


@register_model(preprocessing="imagenet")
def umsi_efficientnet_b3(**kwargs: Any) -> UMSI:
    """UMSI on timm's EfficientNet-B3 at output stride 8 (``model=efficientnet_b3``)."""
    return UMSI(**{"encoder": "efficientnet_b3", **kwargs})


@register_model(preprocessing="imagenet")
def umsi_resnet50(**kwargs: Any) -> UMSI:
    """UMSI on timm's ResNet-50 at output stride 8 (``model=resnet50``)."""
    return UMSI(**{"encoder": "resnet50", **kwargs})


@register_model(preprocessing="imagenet")
def umsi_deit_small(**kwargs: Any) -> UMSI:
    """UMSI on timm's DeiT-S (16-px patch tokens on a grid, output stride 16; ``model=deit_small``)."""
    return UMSI(**{"encoder": "deit_small_patch16_224", "output_stride": 16, **kwargs})


@register_model(preprocessing="imagenet")
def umsi_tiny(**kwargs: Any) -> UMSI:
    """UMSI's layers at a fraction of the width on timm's ``test_efficientnet`` (``model=tiny``): about 0.15 M
    parameters, for smoke runs and the test suite (Lightning, checkpoints, resuming, serving), not for results.

    The 1×1 map head starts with non-negative weights and bias: its input is post-ReLU (≥ 0), so the map starts
    positive everywhere. With random signs a head this narrow starts dead (ReLU(negative) = 0 everywhere, no
    gradient) for most seeds."""
    tiny = {"encoder": "test_efficientnet", "width": 32, "decoder_channels": [[32, 32], [16, 16], [16]]}
    model = UMSI(**{**tiny, **kwargs})
    with torch.no_grad():
        model.decoder.head.weight.abs_()
        model.decoder.head.bias.abs_()
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(learnable parameters, BatchNorm running mean/variance values) — their sum is what Keras reports."""
    params = sum(p.numel() for p in model.parameters())
    stats = sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    return params, stats
