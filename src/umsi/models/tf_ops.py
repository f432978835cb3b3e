"""TensorFlow-1 compatible operations, so that converted Keras weights give the released model's outputs.

Two semantics differ between Keras 2.3.1 / TF 1.14 and PyTorch defaults (umsi-reference §2.4):

* "same" padding: TF pads ``max((⌈n/s⌉−1)·s + (k−1)·d + 1 − n, 0)`` pixels, the odd pixel after (bottom/right);
  PyTorch pads symmetrically. They differ for strided ops on some sizes (the stride-2 max-pools on even
  sizes, the stride-3 global conv when the grid is ≡ 2 mod 3).
* bilinear upsampling: Keras ``UpSampling2D(interpolation="bilinear")`` calls TF1 ``resize_bilinear`` with
  ``align_corners=False, half_pixel_centers=False``: output pixel o reads source o·(n_in/n_out), not PyTorch's
  half-pixel (o+0.5)·(n_in/n_out)−0.5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import pad_same
from torch import nn

UPSAMPLING_MODES = ("half_pixel", "tf1_legacy")


class Conv2dTFSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "same" padding computed from the input size (asymmetric when TF is).
    Same parameters and state-dict keys as ``nn.Conv2d``; the ``padding`` argument is ignored."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def max_pool2d(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """Max-pool of an already padded (B, C, h, w) → (B, C, ⌊(h−kh)/sh⌋+1, ⌊(w−kw)/sw⌋+1), like ``F.max_pool2d``.

    Without autograd on the CPU it is the max over the kw column shifts, then over the kh row shifts: the same
    values (max is associative), without the argmax indices that PyTorch's CPU kernel computes as well: 2.5–7×
    faster on the encoder's pools (30×40×1024, stride 1: 32 → 4.6 ms on one thread). Elsewhere (GPU, training,
    tracing for export) ``F.max_pool2d``."""
    if x.device.type != "cpu" or (torch.is_grad_enabled() and x.requires_grad) or torch.jit.is_tracing():
        return F.max_pool2d(x, kernel, stride)
    (kh, kw), (sh, sw) = kernel, stride
    out_h, out_w = (int(x.shape[-2]) - kh) // sh + 1, (int(x.shape[-1]) - kw) // sw + 1
    rows = x[..., :, 0 : (out_w - 1) * sw + 1 : sw]
    for j in range(1, kw):
        rows = torch.maximum(rows, x[..., :, j : j + (out_w - 1) * sw + 1 : sw])
    out = rows[..., 0 : (out_h - 1) * sh + 1 : sh, :]
    for i in range(1, kh):
        out = torch.maximum(out, rows[..., i : i + (out_h - 1) * sh + 1 : sh, :])
    return out


class MaxPool2dTFSame(nn.MaxPool2d):
    """3×3 (or k×k) max-pool with TensorFlow "same" padding; padded positions never win (−inf)."""

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__(kernel_size, stride, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel, stride = _pair(self.kernel_size), _pair(self.stride)
        x = pad_same(x, kernel, stride, value=-float("inf"))
        return max_pool2d(x, kernel, stride)


class MaxPool2dFast(nn.MaxPool2d):
    """``nn.MaxPool2d`` (symmetric −inf padding, floor mode) computed by :func:`max_pool2d`; other settings
    (dilation, ceil mode, indices) fall back to ``nn.MaxPool2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.return_indices or self.ceil_mode or _pair(self.dilation) != (1, 1):
            return super().forward(x)
        (ph, pw), kernel, stride = _pair(self.padding), _pair(self.kernel_size), _pair(self.stride)
        if ph or pw:
            x = F.pad(x, (pw, pw, ph, ph), value=-float("inf"))
        return max_pool2d(x, kernel, stride)


def _resize_axis_tf1(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Linear resize of one axis with TF1 legacy coordinates: src = o·(n_in/size), clamped at the last pixel."""
    n_in = int(x.shape[dim])  # a Python int, so tracing on CUDA does not mix in a CPU size tensor
    if n_in == size:
        return x
    if size % n_in == 0:
        return _upsample_axis_tf1(x, size // n_in, dim)
    source = torch.arange(size, device=x.device, dtype=torch.float64) * (n_in / size)
    top = source.floor().long()
    bottom = (top + 1).clamp(max=n_in - 1)
    shape = [1] * x.dim()
    shape[dim] = size
    frac = (source - top).to(x.dtype).view(shape)
    upper, lower = x.index_select(dim, top), x.index_select(dim, bottom)
    return upper + (lower - upper) * frac


def _upsample_axis_tf1(x: torch.Tensor, factor: int, dim: int) -> torch.Tensor:
    """The same resize for an integer factor k without any gather: out[k·i + j] = x[i] + (x[i+1] − x[i])·j/k,
    x[n] = x[n−1]; the general path's formula (equal up to the rounding of one fused multiply-add), in a few
    broadcast passes instead of ``index_select``, which is slow along the last axis and made several
    output-size temporaries (the decoder's ×2/×4 upsamplings)."""
    dim = dim % x.dim()
    n = int(x.shape[dim])
    following = torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim)
    shape = [1] * (x.dim() + 1)
    shape[dim + 1] = factor
    frac = (torch.arange(factor, device=x.device, dtype=torch.float64) / factor).to(x.dtype).view(shape)
    out = torch.addcmul(x.unsqueeze(dim + 1), (following - x).unsqueeze(dim + 1), frac)
    return out.flatten(dim, dim + 1)


def resize_bilinear(x: torch.Tensor, size: tuple[int, int], mode: str = "half_pixel") -> torch.Tensor:
    """Bilinear resize of (B, C, h, w) to (B, C, *size).

    ``half_pixel``: PyTorch ``align_corners=False`` (TF2 ``resize_images_v2``).
    ``tf1_legacy``: TF1 ``resize_bilinear(align_corners=False, half_pixel_centers=False)``, what Keras 2.3.1
    ``UpSampling2D(interpolation="bilinear")`` computes; the last s−1 rows/cols repeat the border for ×s.
    """
    if mode == "half_pixel":
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    if mode == "tf1_legacy":
        return _resize_axis_tf1(_resize_axis_tf1(x, size[0], -2), size[1], -1)
    raise ValueError(f"model.upsampling={mode!r}: choose one of {UPSAMPLING_MODES}")


def configure_batchnorm(module: nn.Module, eps: float | None = None, momentum: float | None = None) -> None:
    """Set ``eps`` and/or ``momentum`` of every BatchNorm in ``module`` (Keras momentum 0.99 = PyTorch 0.01)."""
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            if eps is not None:
                layer.eps = eps
            if momentum is not None:
                layer.momentum = momentum
