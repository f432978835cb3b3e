"""NumPy reference implementations of the Keras 2.3.1 / TF 1.14 ops used by UMSI, on NHWC arrays.

Written straight from the formulas (``shared/docs/umsi-reference.md`` §2.4) for clarity, not speed: meant for tiny
inputs in tests. Everything is computed and returned in float64.
"""

from __future__ import annotations

import math

import numpy as np


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def tf_same_pads(n: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF 'same' padding of one axis: out = ceil(n/s), total = max((out-1)·s + (k-1)·d + 1 - n, 0),
    before = total // 2, after = total - before (the extra pixel goes bottom/right)."""
    out = math.ceil(n / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - n, 0)
    return total // 2, total - total // 2


def _pad_nhwc(
    x: np.ndarray, kh: int, kw: int, stride: tuple[int, int], dilation: tuple[int, int], padding: str, value: float
) -> np.ndarray:
    """Pad H and W with `value` as TF does for `padding` ('same' or 'valid')."""
    if padding == "valid":
        return x
    if padding != "same":
        raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
    ph = tf_same_pads(x.shape[1], kh, stride[0], dilation[0])
    pw = tf_same_pads(x.shape[2], kw, stride[1], dilation[1])
    return np.pad(x, ((0, 0), ph, pw, (0, 0)), constant_values=value)


def _windows(
    xp: np.ndarray, kh: int, kw: int, stride: tuple[int, int], dilation: tuple[int, int]
) -> tuple[int, int, list[tuple[int, int, np.ndarray]]]:
    """(out_h, out_w, [(a, b, xp[:, i·s + a·d, j·s + b·d, :] over all outputs i, j) for each kernel tap a, b])."""
    (sh, sw), (dh, dw) = stride, dilation
    out_h = (xp.shape[1] - (kh - 1) * dh - 1) // sh + 1
    out_w = (xp.shape[2] - (kw - 1) * dw - 1) // sw + 1
    taps = []
    for a in range(kh):
        for b in range(kw):
            r0, c0 = a * dh, b * dw
            taps.append((a, b, xp[:, r0 : r0 + (out_h - 1) * sh + 1 : sh, c0 : c0 + (out_w - 1) * sw + 1 : sw, :]))
    return out_h, out_w, taps


def conv2d_nhwc(
    x: np.ndarray,
    kernel_hwio: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
    padding: str = "same",
) -> np.ndarray:
    """Keras Conv2D (cross-correlation): y[n,i,j,o] = Σ_{a,b,c} xp[n, i·s + a·d, j·s + b·d, c] · K[a,b,c,o] + bias[o],
    xp = x zero-padded per TF 'same' (or unpadded for 'valid'); K is HWIO."""
    x = np.asarray(x, dtype=np.float64)
    k = np.asarray(kernel_hwio, dtype=np.float64)
    kh, kw, cin, cout = k.shape
    if x.shape[3] != cin:
        raise ValueError(f"input has {x.shape[3]} channels, kernel expects {cin}")
    s, d = _pair(stride), _pair(dilation)
    xp = _pad_nhwc(x, kh, kw, s, d, padding, 0.0)
    out_h, out_w, taps = _windows(xp, kh, kw, s, d)
    y = np.zeros((x.shape[0], out_h, out_w, cout))
    for a, b, win in taps:
        y += np.einsum("nhwc,co->nhwo", win, k[a, b])
    if bias is not None:
        y += np.asarray(bias, dtype=np.float64)
    return y


def depthwise_conv2d_nhwc(
    x: np.ndarray,
    depthwise_kernel: np.ndarray,
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
    padding: str = "same",
) -> np.ndarray:
    """Keras DepthwiseConv2D, kernel (kh, kw, C, M): y[n,i,j,c·M+m] = Σ_{a,b} xp[n, i·s + a·d, j·s + b·d, c] ·
    K[a,b,c,m] (no bias; xp zero-padded per TF 'same'). M = 1 in UMSI."""
    x = np.asarray(x, dtype=np.float64)
    k = np.asarray(depthwise_kernel, dtype=np.float64)
    kh, kw, c, mult = k.shape
    if x.shape[3] != c:
        raise ValueError(f"input has {x.shape[3]} channels, kernel expects {c}")
    s, d = _pair(stride), _pair(dilation)
    xp = _pad_nhwc(x, kh, kw, s, d, padding, 0.0)
    out_h, out_w, taps = _windows(xp, kh, kw, s, d)
    y = np.zeros((x.shape[0], out_h, out_w, c, mult))
    for a, b, win in taps:
        y += np.einsum("nhwc,cm->nhwcm", win, k[a, b])
    return y.reshape(x.shape[0], out_h, out_w, c * mult)


def separable_conv2d_nhwc(
    x: np.ndarray, depthwise_kernel: np.ndarray, pointwise_kernel: np.ndarray, padding: str = "same"
) -> np.ndarray:
    """Keras SeparableConv2D (stride 1, dilation 1, no bias): y = pointwise(depthwise(x)), i.e. the depthwise conv
    with kernel (kh, kw, C, 1) then a 1×1 conv with pointwise kernel (1, 1, C, Cout)."""
    return conv2d_nhwc(depthwise_conv2d_nhwc(x, depthwise_kernel, padding=padding), pointwise_kernel, padding="valid")


def dense(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Keras Dense (before activation): y = x @ kernel + bias, kernel shaped (in, out)."""
    y = np.asarray(x, dtype=np.float64) @ np.asarray(kernel, dtype=np.float64)
    return y if bias is None else y + np.asarray(bias, dtype=np.float64)


def batch_norm_inference(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, var: np.ndarray, eps: float
) -> np.ndarray:
    """BatchNormalization at inference over the last axis: y = γ · (x − μ) / √(σ² + ε) + β."""
    x, gamma, beta, mean, var = (np.asarray(a, dtype=np.float64) for a in (x, gamma, beta, mean, var))
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def max_pool_same_nhwc(x: np.ndarray, pool: int = 3, stride: int = 2) -> np.ndarray:
    """TF MaxPooling2D, padding 'same': y[n,i,j,c] = max_{a,b < pool} xp[n, i·s + a, j·s + b, c], where xp is x
    padded per TF 'same' with −inf (padded positions never win)."""
    x = np.asarray(x, dtype=np.float64)
    s = (stride, stride)
    xp = _pad_nhwc(x, pool, pool, s, (1, 1), "same", -np.inf)
    out_h, out_w, taps = _windows(xp, pool, pool, s, (1, 1))
    y = np.full((x.shape[0], out_h, out_w, x.shape[3]), -np.inf)
    for _, _, win in taps:
        y = np.maximum(y, win)
    return y


def _resize_axis_tf1(x: np.ndarray, axis: int, n_out: int) -> np.ndarray:
    """1-D legacy TF1 bilinear resize along `axis` (align_corners=False, half_pixel_centers=False)."""
    n_in = x.shape[axis]
    scale = n_in / n_out
    src = np.arange(n_out) * scale
    top = np.floor(src).astype(np.int64)
    bottom = np.minimum(top + 1, n_in - 1)
    frac = src - top
    shape = [1] * x.ndim
    shape[axis] = n_out
    frac = frac.reshape(shape)
    return (1.0 - frac) * np.take(x, top, axis=axis) + frac * np.take(x, bottom, axis=axis)


def resize_bilinear_tf1_nhwc(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1 ``resize_bilinear`` (align_corners=False, half_pixel_centers=False), as Keras 2.3.1 UpSampling2D
    'bilinear': per axis, output o reads src = o · (n_in / n_out), top = ⌊src⌋, bottom = min(top + 1, n_in − 1),
    f = src − top, value = (1 − f) · x[top] + f · x[bottom]; rows then columns, in float64."""
    x = np.asarray(x, dtype=np.float64)
    return _resize_axis_tf1(_resize_axis_tf1(x, 1, out_h), 2, out_w)
