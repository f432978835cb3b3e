"""UMSI head modules: global/classification branch, ASPP, class-conditioned fusion and the decoder.

All modules are NCHW. Widths, dilations and dropout are constructor arguments; the defaults are the released
UMSI network (umsi-reference §1.3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from umsi.models.depthwise import DepthwiseConv2d
from umsi.models.tf_ops import Conv2dTFSame, resize_bilinear


class ConvBNReLU(nn.Sequential):
    """k×k conv (no bias) → BatchNorm → ReLU. (B, C_in, h, w) → (B, C_out, h', w').
    ``padding="tf_same"`` pads like TensorFlow "same" for the actual input size."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, padding: int | str = 0
    ) -> None:
        conv = Conv2dTFSame if padding == "tf_same" else nn.Conv2d
        super().__init__(
            conv(in_channels, out_channels, kernel_size, stride, 0 if padding == "tf_same" else padding, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SeparableConvBNReLU(nn.Sequential):
    """Depthwise 3×3 (dilation d, :class:`~umsi.models.depthwise.DepthwiseConv2d`) → BN → ReLU → pointwise 1×1 →
    BN → ReLU (Keras ``SepConv_BN``, ``depth_activation=True``). (B, C_in, h, w) → (B, C_out, h, w)."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__(
            DepthwiseConv2d(in_channels, 3, dilation),
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            ConvBNReLU(in_channels, out_channels, 1),
        )


class GlobalBranch(nn.Module):
    """Encoder features (B, C, h, w) → global vector g (B, width).

    3×3 stride-3 conv → BN → ReLU → dropout → global average pool → linear (no activation) → dropout.
    g feeds both the classifier and the decoder conditioning. ``dropout``: one rate for both dropouts, or
    (after the conv, after the linear layer) — Keras ``dropout_1`` and ``dropout_2``. ``tf_same_padding``: the
    strided conv pads like TensorFlow "same" (released model) instead of 1 pixel on each side.
    """

    def __init__(
        self,
        in_channels: int,
        width: int = 256,
        dropout: float | tuple[float, float] = 0.3,
        tf_same_padding: bool = False,
    ) -> None:
        super().__init__()
        conv_rate, dense_rate = (dropout, dropout) if isinstance(dropout, (int, float)) else dropout
        padding = "tf_same" if tf_same_padding else 1
        self.conv = ConvBNReLU(in_channels, width, kernel_size=3, stride=3, padding=padding)
        self.dropout_conv = nn.Dropout(conv_rate)
        self.dense = nn.Linear(width, width)
        self.dropout_dense = nn.Dropout(dense_rate)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.dropout_conv(self.conv(features))
        return self.dropout_dense(self.dense(x.mean(dim=(2, 3))))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling without an image-pooling branch.

    (B, C, h, w) → (B, width·(1 + len(dilations)), h, w): [1×1 conv, separable 3×3 at each dilation],
    concatenated in that order.
    """

    def __init__(self, in_channels: int, width: int = 256, dilations: Sequence[int] = (6, 12, 18)) -> None:
        super().__init__()
        branches = [ConvBNReLU(in_channels, width, 1)]
        branches += [SeparableConvBNReLU(in_channels, width, d) for d in dilations]
        self.branches = nn.ModuleList(branches)
        self.out_channels = width * len(branches)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(features) for branch in self.branches], dim=1)


class GlobalFusion(nn.Module):
    """Class-conditioning of the decoder: the global vector, projected by a linear layer, is tiled over
    the ASPP grid and concatenated after the ASPP channels, then a 1×1 projection mixes them.

    aspp (B, C_aspp, h, w), g (B, C_g) → (B, width, h, w).
    """

    def __init__(self, aspp_channels: int, global_channels: int, width: int = 256, dropout: float = 0.3) -> None:
        super().__init__()
        self.dense = nn.Linear(global_channels, width)
        self.projection = ConvBNReLU(aspp_channels + width, width, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, aspp: torch.Tensor, global_vector: torch.Tensor) -> torch.Tensor:
        tiled = self.dense(global_vector)[:, :, None, None].expand(-1, -1, *aspp.shape[-2:])
        return self.dropout(self.projection(torch.cat([aspp, tiled], dim=1)))


class Decoder(nn.Module):
    """Stages of dilated 3×3 convs (bias, ReLU) each followed by dropout and bilinear upsampling.

    Stages are upsampled ×2 except the last, which is resized to ``output_size`` (×4 for the released network at
    240×320), then a 1×1 conv and ReLU give the non-negative map. The first upsampling follows the encoder's
    output stride s: ×s/4 (×2 at the official 8, ×4 at 16, ×3.5 for a 14-px-patch ViT), so every later grid is the
    official network's whatever the encoder, and the map is exactly ``output_size``. ``dropout``: one rate for
    every stage, or one per stage (Keras ``dec_dp1`` … ``dec_dp3``). ``upsampling`` picks the bilinear coordinate
    convention (``tf1_legacy`` for the released Keras model, see ``tf_ops``).
    (B, C, h, w) → (B, 1, *output_size).
    """

    def __init__(
        self,
        in_channels: int,
        stage_channels: Sequence[Sequence[int]] = ((256, 256), (128, 128), (64,)),
        dilation: int = 2,
        dropout: float | Sequence[float] = 0.3,
        upsampling: str = "half_pixel",
        encoder_stride: int = 8,
    ) -> None:
        super().__init__()
        if encoder_stride < 1:
            raise ValueError(f"the encoder's output stride must be >= 1, got {encoder_stride}")
        resize_bilinear(torch.zeros(1, 1, 1, 1), (2, 2), upsampling)  # reject an unknown mode at build time
        rates = [dropout] * len(stage_channels) if isinstance(dropout, (int, float)) else list(dropout)
        if len(rates) != len(stage_channels):
            raise ValueError(
                f"model.dropout.decoder has {len(rates)} rates for {len(stage_channels)} decoder stages "
                "(model.decoder_channels): give one per stage, or a single number"
            )
        self.upsampling = upsampling
        self.first_factor = encoder_stride / 4
        stages = []
        channels = in_channels
        for widths, rate in zip(stage_channels, rates, strict=True):
            layers: list[nn.Module] = []
            for width in widths:
                layers += [
                    nn.Conv2d(channels, width, 3, padding=dilation, dilation=dilation),
                    nn.ReLU(inplace=True),
                ]
                channels = width
            layers.append(nn.Dropout(rate))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.head = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        for i, stage in enumerate(self.stages[:-1]):
            x = stage(x)
            factor = self.first_factor if i == 0 else 2
            if factor == 1:
                continue
            if float(factor).is_integer():  # integer sizes from the shapes: traceable with dynamic axes
                size = (int(factor) * x.shape[-2], int(factor) * x.shape[-1])
            else:
                size = (round(factor * x.shape[-2]), round(factor * x.shape[-1]))
            x = resize_bilinear(x, size, self.upsampling)
        # The 1×1 head and the bilinear resize are both linear and the resize weights sum to 1, so the head runs
        # before the last resize: the same map (up to float rounding) with one channel resized instead of 64.
        return F.relu(resize_bilinear(self.head(self.stages[-1](x)), output_size, self.upsampling))
