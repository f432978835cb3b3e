"""Depthwise convolution with a CPU inference path for large dilations, where oneDNN's own padding is slow.

The ASPP's separable convolutions (umsi-reference §1.3) are 3×3 depthwise convolutions at dilations 6, 12 and 18
on the 2048-channel encoder output. On the CPU, PyTorch's oneDNN depthwise kernel with its own zero padding takes
10–40× longer from dilation 8 on than at dilation 6 (AVX-512, fp32 and bf16, feature grids 15×20 to 60×80; 2048
channels at 30×40, dilation 12: 18–24 ms against 0.7–1.3 ms at dilation 6). The same kernel on an input padded
beforehand (then no padding in the convolution) takes 1–5 ms there: the same sums, the zeros added explicitly
(docs/performance.md).
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch import nn

LARGE_DILATION = 8
"""From this dilation on (both axes) CPU inference pads the input before the convolution."""


_PADDED = threading.local()  # this thread's zero-padded buffers: {(shape, padding, dtype, …): tensor}
PADDED_BUFFERS = 8
"""Zero-padded buffers kept per thread (one per shape, padding, dtype and memory format; the oldest goes first)."""


def zero_padded(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """(B, C, H, W) → (B, C, H + 2·pad_h, W + 2·pad_w) with zeros around ``x``, in a buffer that this thread reuses
    for the next input of the same shape, padding, dtype and memory format: only the interior is written on each
    call, so the result is valid until the thread's next call with that shape. Each thread keeps up to
    :data:`PADDED_BUFFERS` of them while it lives. Why: a fresh padded tensor of the ASPP's input (2 × 2048 × 66 ×
    76 in bf16 at 240×320: 41 MB, above glibc's mmap threshold) is new memory on every call, and zero-filling it
    took 7 ms per image, mostly page faults."""
    height, width = x.shape[-2:]
    shape = (*x.shape[:-2], height + 2 * pad_h, width + 2 * pad_w)
    layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    # the padding is in the key: a smaller input padded more has the same padded shape, and a buffer written with
    # another interior would keep that input's values where this one needs zeros
    key = (shape, pad_h, pad_w, x.dtype, x.device, layout, torch.is_inference_mode_enabled())
    buffers = _PADDED.__dict__.setdefault("buffers", {})
    padded = buffers.get(key)
    if padded is None:
        if len(buffers) >= PADDED_BUFFERS:
            del buffers[next(iter(buffers))]
        padded = buffers[key] = torch.zeros(shape, dtype=x.dtype, device=x.device).contiguous(memory_format=layout)
    padded[..., pad_h : pad_h + height, pad_w : pad_w + width].copy_(x)
    return padded


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(C, C, k, padding=d·(k−1)/2, dilation=d, groups=C)``: (B, C, H, W) → (B, C, H, W), the same
    parameters and state-dict keys. For CPU inference at dilation ≥ :data:`LARGE_DILATION` the input is copied
    into a zero-padded buffer (:func:`zero_padded`) before the convolution instead of padded inside it (the same
    values up to float rounding, several times faster there). Training (autograd), tracing for export (the file
    keeps one standard Conv op), other devices and other settings convolve with the padding inside."""

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
            padded = zero_padded(x, *self.padding)
            return F.conv2d(padded, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
