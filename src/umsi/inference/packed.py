"""Convolutions with their weights reordered once into oneDNN's blocked layout, for CPU inference.

On the CPU, ``F.conv2d`` hands oneDNN a plain (O, I, kh, kw) weight, which oneDNN reorders into its blocked layout on
every call: 15 ms of a 205 ms bf16 forward pass of the released network at 240×320 (the 26 middle-flow 728×728
weights alone 8 ms; ``torch.backends.mkldnn.verbose``). :class:`PackedConv2d` does that reorder once per input
shape and convolves with PyTorch's oneDNN operators for pre-packed weights (``torch.ops.mkldnn``, what
``torch.compile``'s CPU freezing pass emits): 9 % less time in bf16 and 3–6 % in float32 at batch 1
(docs/performance.md). The released network's maps at 240×320 are the same bits; where oneDNN picks another
algorithm for a packed weight (seen on a 3×3 unpadded float32 convolution of a small grid) they differ by float
rounding.
"""

from __future__ import annotations

import torch
from torch import nn

PACKED_SHAPES = 4
"""Input shapes a :class:`PackedConv2d` keeps a packed weight for (each a copy of the weight)."""


def packing_available(dtype: torch.dtype = torch.float32) -> bool:
    """Whether this PyTorch build has oneDNN and its operators for pre-packed convolution weights, and this CPU
    oneDNN's packed kernels for ``dtype`` (bf16 needs AVX-512 BW/VL/DQ or AVX-NE-CONVERT, fp16 AVX512-FP16 or
    AVX-NE-CONVERT; elsewhere the reorder raises, so such weights stay unpacked)."""
    ops = torch.ops.mkldnn
    if not (
        torch.backends.mkldnn.is_available()
        and hasattr(ops, "_reorder_convolution_weight")
        and hasattr(ops, "_convolution_pointwise")
    ):
        return False
    if dtype == torch.bfloat16:
        return bool(ops._is_mkldnn_bf16_supported())
    if dtype == torch.float16:
        return bool(ops._is_mkldnn_fp16_supported())
    return dtype == torch.float32


class PackedConv2d(nn.Module):
    """An eval-mode ``nn.Conv2d`` (zero padding given in pixels) for CPU inference with its weight pre-packed.

    (B, C_in, H, W) → (B, C_out, H', W') as the wrapped convolution, in the convolution's weight dtype: the input is
    cast to it first, as CPU autocast does for a bf16 convolution (a float32 model gets float32). The wrapped
    convolution runs as it is under CPU autocast to another dtype, on another device, with autograd and while
    tracing (an export keeps a standard Conv op). A packed weight is kept for each of the last
    :data:`PACKED_SHAPES` input shapes (e.g. a batch's chunks of 2 and its last chunk of 1), weight dtypes and
    weight versions (an in-place change of the weight packs it again); each is a copy of the weight.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv
        self._packed: dict[tuple, torch.Tensor] = {}  # by input shape and weight dtype/storage/version, oldest first

    def __getstate__(self) -> dict:
        # the packed weights are oneDNN tensors, which cannot be copied or pickled; a copy packs its own again
        return {**super().__getstate__(), "_packed": {}}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        weight = conv.weight
        if (
            x.device.type != "cpu"
            or weight.device.type != "cpu"
            or (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            or torch.jit.is_tracing()
            or torch.jit.is_scripting()
            or (torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") != weight.dtype)
        ):
            # another device, autograd, tracing for export, or autocast to another dtype than the weight's: the
            # convolution as it is
            return conv(x)
        key = (tuple(x.shape), weight.dtype, weight.data_ptr(), weight._version)  # _version: in-place changes
        padding, stride, dilation = list(conv.padding), list(conv.stride), list(conv.dilation)
        packed = self._packed.get(key)
        if packed is None:
            for stale in list(self._packed)[: max(0, len(self._packed) - PACKED_SHAPES + 1)]:
                self._packed.pop(stale, None)  # the oldest (pop with a default: another thread may race here)
            packed = torch.ops.mkldnn._reorder_convolution_weight(
                weight.detach(), padding, stride, dilation, conv.groups, list(x.shape)
            )
            self._packed[key] = packed
        bias = conv.bias.detach() if conv.bias is not None else None
        return torch.ops.mkldnn._convolution_pointwise(
            x.to(weight.dtype), packed, bias, padding, stride, dilation, conv.groups, "none", [], ""
        )


def pack_convolutions(model: nn.Module) -> int:
    """Replace, in place, every plain ``nn.Conv2d`` of ``model`` (exactly that type, zero padding in pixels; the
    subclasses with their own forward, e.g. TF "same" padding, stay) by a :class:`PackedConv2d`; returns the
    number replaced (none whose weight dtype :func:`packing_available` refuses). Its state-dict keys gain
    ``.conv``; the model is for CPU inference afterwards (other uses run the wrapped convolutions unpacked)."""
    packed = 0
    for module in list(model.modules()):
        if isinstance(module, PackedConv2d):
            continue  # packed already (a second call changes nothing)
        for name, child in list(module._modules.items()):
            if (
                type(child) is nn.Conv2d
                and child.padding_mode == "zeros"
                and isinstance(child.padding, tuple)
                and packing_available(child.weight.dtype)
            ):
                module._modules[name] = PackedConv2d(child)
                packed += 1
    return packed
