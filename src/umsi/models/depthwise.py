"""Depthwise convolution with a CPU inference path for large dilations, where oneDNN's own padding is slow.

The ASPP's separable convolutions (umsi-reference §1.3) are 3×3 depthwise convolutions at dilations 6, 12 and 18
on the 2048-channel encoder output. On the CPU, PyTorch's oneDNN depthwise kernel with its own zero padding takes
10–40× longer from dilation 8 on than at dilation 6 (AVX-512, fp32 and bf16, feature grids 15×20 to 60×80; 2048
channels at 30×40, dilation 12: 18–24 ms against 0.7–1.3 ms at dilation 6). The same kernel on an input padded
beforehand (``F.pad``, then no padding in the convolution) takes 1–5 ms there: the same sums, the zeros added
explicitly (docs/performance.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LARGE_DILATION = 8
"""From this dilation on (both axes) CPU inference pads the input before the convolution."""


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(C, C, k, padding=d·(k−1)/2, dilation=d, groups=C)``: (B, C, H, W) → (B, C, H, W), the same
    parameters and state-dict keys. For CPU inference at dilation ≥ :data:`LARGE_DILATION` the zero padding is
    applied by ``F.pad`` before the convolution instead of inside it (the same values up to float rounding, several
    times faster there). Training (autograd), tracing for export (the file keeps one standard Conv op), other
    devices and other settings convolve with the padding inside."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: int = 1, bias: bool = False) -> None:
        super().__init__(
            channels,
            channels,
            kernel_size,
            padding=dilation * (kernel_size - 1) // 2,
            dilation=dilation,
            groups=channels,
            bias=bias,
        )

    def _pads_first(self, x: torch.Tensor) -> bool:
        return (
            x.device.type == "cpu"
            and not (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad))
            and not torch.jit.is_tracing()
            and not torch.jit.is_scripting()
            and self.padding_mode == "zeros"
            and isinstance(self.padding, tuple)
            and min(self.dilation) >= LARGE_DILATION
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._pads_first(x):
            (pad_h, pad_w) = self.padding
            x = F.pad(x, (pad_w, pad_w, pad_h, pad_h))
            return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
