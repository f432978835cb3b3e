"""The CPU speed-ups of the forward pass change no output beyond float rounding: the gather-free TF1 upsampling, the
decoder head before the last resize, BatchNorm folding, the predictor's image-by-image CPU chunks, the max-pool
without indices, the dilated depthwise convolution on an input padded first and the pre-packed convolution weights."""

from __future__ import annotations

import copy
import io
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import keras_reference as ref
import umsi
from umsi.checkpoints.loading import save_model
from umsi.inference.fold import fold_batchnorm
from umsi.inference.packed import PACKED_SHAPES, PackedConv2d, pack_convolutions, packing_available
from umsi.inference.predictor import Predictor
from umsi.models import UMSI, create_model
from umsi.models.depthwise import LARGE_DILATION, PADDED_BUFFERS, DepthwiseConv2d, zero_padded
from umsi.models.heads import ASPP, Decoder
from umsi.models.tf_ops import MaxPool2dFast, max_pool2d, resize_bilinear


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32))


@pytest.mark.parametrize(
    ("size", "out"),
    [((5, 7), (15, 21)), ((1, 1), (4, 4)), ((6, 9), (12, 9)), ((6, 9), (18, 20)), ((8, 4), (11, 8))],
)
def test_integer_factor_upsampling_is_the_tf1_formula(size: tuple[int, int], out: tuple[int, int]) -> None:
    # ×3 both ways, a 1-pixel input, one axis unchanged, and integer × non-integer factors mixed
    x = np.random.default_rng(2).standard_normal((2, *size, 3))
    got = resize_bilinear(_nchw(x), out, "tf1_legacy")
    assert got.shape == (2, 3, *out) and got.is_contiguous()
    expected = ref.resize_bilinear_tf1_nhwc(x, *out)
    np.testing.assert_allclose(got.double().numpy().transpose(0, 2, 3, 1), expected, atol=1e-6)


@pytest.mark.parametrize("upsampling", ["tf1_legacy", "half_pixel"])
@pytest.mark.parametrize("train", [False, True])
def test_decoder_head_before_the_last_resize_gives_the_same_map(upsampling: str, train: bool) -> None:
    torch.manual_seed(0)
    decoder = Decoder(24, ((16, 16), (8,), (6,)), upsampling=upsampling).train(train)
    with torch.no_grad():
        decoder.head.weight.normal_()
    x = torch.randn(2, 24, 5, 7)
    out_size = (50, 66)  # not a multiple of the last grid (20×28): the general resize as well

    def resize_then_head(x: torch.Tensor) -> torch.Tensor:  # the layer order of the released graph
        for i, stage in enumerate(decoder.stages):
            x = stage(x)
            size = out_size if i == len(decoder.stages) - 1 else (2 * x.shape[-2], 2 * x.shape[-1])
            x = resize_bilinear(x, size, upsampling)
        return torch.relu(decoder.head(x))

    with torch.no_grad():
        torch.manual_seed(1)  # the same dropout masks in train mode: dropout comes before either order
        expected = resize_then_head(x)
        torch.manual_seed(1)
        got = decoder(x, out_size)
    assert got.shape == (2, 1, *out_size)
    assert float(expected.std()) > 0.01 * float(expected.max())  # a map, not a constant
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6 * float(expected.abs().max()))


def _with_statistics(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so that folding has something to fold."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                m.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                m.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    return model.eval()


@pytest.mark.parametrize("official", [True, False])
def test_folded_batchnorm_gives_the_same_outputs(official: bool) -> None:
    torch.manual_seed(0)
    model = _with_statistics(UMSI.official() if official else UMSI())
    x = torch.randn(2, 3, 48, 64) * 50
    with torch.no_grad():
        expected = model(x)
        folded_model = model  # in place
        n = fold_batchnorm(folded_model)
        got = folded_model(x)
    assert n == 49  # 40 in the encoder (timm Xception) and 9 in the head: all of them
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded_model.modules())
    scale = float(expected.saliency.max() - expected.saliency.min())
    assert scale > 0
    torch.testing.assert_close(got.saliency, expected.saliency, rtol=0, atol=1e-5 * scale)
    torch.testing.assert_close(got.logits, expected.logits, rtol=0, atol=1e-5 * float(expected.logits.abs().max()))


def test_fold_skips_batchnorm_that_does_not_follow_a_convolution() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4))
    assert fold_batchnorm(model) == 0 and isinstance(model[2], nn.BatchNorm2d)


def test_cpu_chunks_change_no_value() -> None:
    torch.manual_seed(0)
    model = UMSI(width=16, decoder_channels=((8,), (8,), (4,)), aspp_dilations=(2,)).eval()
    batch = torch.randn(5, 3, 40, 56) * 50
    whole = Predictor(model, [f"c{i}" for i in range(6)], (40, 56), chunk_size=5)
    chunked = Predictor(model, [f"c{i}" for i in range(6)], (40, 56))
    assert chunked.chunk_size == 1  # the CPU default in float32
    assert Predictor(model, ["a"], (40, 56), precision="bf16").chunk_size == 2  # half as large activations
    maps, probabilities = chunked.forward(batch)
    expected_maps, expected_probabilities = whole.forward(batch)
    assert maps.shape == (5, 80, 112) and probabilities.shape == (5, 6)
    torch.testing.assert_close(maps, expected_maps, rtol=1e-5, atol=1e-6 * float(expected_maps.max()))
    torch.testing.assert_close(probabilities, expected_probabilities, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="chunk_size=0"):
        Predictor(model, ["a"], (40, 56), chunk_size=0)


@pytest.mark.parametrize("kernel", [(3, 3), (2, 3)])
@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (3, 2)])
@pytest.mark.parametrize("size", [(9, 12), (10, 7)])
def test_cpu_max_pool_equals_torch(kernel: tuple[int, int], stride: tuple[int, int], size: tuple[int, int]) -> None:
    x = torch.randn(2, 5, *size)
    x[0, 0, 1, 1] = float("nan")  # propagated like F.max_pool2d does
    with torch.no_grad():
        got = max_pool2d(x, kernel, stride)
    torch.testing.assert_close(got, F.max_pool2d(x, kernel, stride), rtol=0, atol=0, equal_nan=True)
    pool = MaxPool2dFast(kernel, stride, padding=1)
    with torch.no_grad():
        torch.testing.assert_close(pool(x), nn.MaxPool2d(kernel, stride, padding=1)(x), equal_nan=True)


def test_max_pool_with_autograd_is_torch_s() -> None:
    x = torch.randn(1, 2, 6, 6, requires_grad=True)
    out = MaxPool2dFast(3, 1, 1)(x)
    out.sum().backward()  # F.max_pool2d's backward: the gradient goes to each window's argmax
    assert x.grad is not None and out.grad_fn.name().startswith("MaxPool2DWithIndices")


def test_default_encoder_uses_the_fast_pool() -> None:
    pools = [m for m in UMSI().encoder.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 4 and all(type(m) is MaxPool2dFast for m in pools)
    assert [m.stride for m in pools] == [2, 2, 1, 1]  # the official stride change kept


@pytest.mark.parametrize("dilation", [LARGE_DILATION, 12, 40])  # 40: every tap but the centre reads padding only
@pytest.mark.parametrize(("kernel", "size", "stride"), [(3, (30, 40), 1), (3, (9, 13), 2), (5, (20, 17), 1)])
@pytest.mark.parametrize("bias", [False, True])
def test_depthwise_padded_first_equals_the_convolution(
    dilation: int, kernel: int, size: tuple[int, int], stride: int, bias: bool
) -> None:
    torch.manual_seed(0)
    conv = DepthwiseConv2d(6, kernel, dilation, bias=bias).eval()
    conv.stride = (stride, stride)
    x = torch.randn(2, 6, *size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert conv._pads_first(x)
        conv(torch.randn_like(x))  # another input first: the reused padded buffer keeps nothing of it
        got = conv(x)
        expected = F.conv2d(x, conv.weight, conv.bias, stride, dilation * (kernel - 1) // 2, dilation, 6)
    assert got.shape == expected.shape and got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = conv(x)
    assert low.dtype == torch.bfloat16  # still one autocast convolution
    torch.testing.assert_close(low.float(), expected, rtol=0.05, atol=0.05 * float(expected.abs().max()))


def test_depthwise_convolution_pads_inside_for_autograd_export_and_small_dilations() -> None:
    conv = DepthwiseConv2d(4, 3, 12)
    x = torch.randn(1, 4, 10, 10, requires_grad=True)
    out = conv(x)
    assert out.grad_fn.name().startswith("Convolution")  # training: one convolution and its backward
    assert out.grad_fn.next_functions[0][0].name() != "ConstantPadNdBackward0"
    with torch.no_grad():
        assert not DepthwiseConv2d(4, 3, LARGE_DILATION - 2)._pads_first(x)  # oneDNN's own padding is fast there
        traced = torch.jit.trace(conv.eval(), x.detach())
    graph = str(traced.graph)
    assert "aten::_convolution" in graph and "pad" not in graph  # an exported file keeps one standard Conv op


def test_aspp_separable_branches_use_the_depthwise_module() -> None:
    aspp = ASPP(32, width=8, dilations=(6, 12, 18))
    depthwise = [branch[0] for branch in aspp.branches[1:]]
    assert all(type(m) is DepthwiseConv2d and m.groups == 32 for m in depthwise)
    assert [m.dilation for m in depthwise] == [(6, 6), (12, 12), (18, 18)]
    assert "branches.1.0.weight" in aspp.state_dict() and "branches.1.0.bias" not in aspp.state_dict()


def _assert_same_to_rounding(got: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to a few roundings of the dtype (float32: 1e-5 of the range; bf16: 2 units in the last place)."""
    assert got.dtype == expected.dtype and got.shape == expected.shape
    scale = float(expected.float().abs().max())
    tolerance = (2**-7 if expected.dtype == torch.bfloat16 else 1e-5) * scale
    torch.testing.assert_close(got.float(), expected.float(), rtol=0, atol=tolerance)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    ("in_channels", "out_channels", "kernel", "stride", "padding", "dilation", "groups"),
    [(16, 24, 1, 1, 0, 1, 1), (8, 16, 3, 2, 1, 1, 1), (12, 12, 3, 1, 2, 2, 1), (12, 12, 3, 1, 1, 1, 12)],
)
def test_packed_convolution_gives_the_same_outputs(
    dtype: torch.dtype,
    in_channels: int,
    out_channels: int,
    kernel: int,
    stride: int,
    padding: int,
    dilation: int,
    groups: int,
) -> None:
    """What ``nn.Conv2d`` gives under CPU autocast (bf16) or in float32, to float rounding, for each input shape it
    meets (a packed weight per shape)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding, dilation, groups).eval().to(dtype)
    packed = PackedConv2d(conv)
    for size in ((20, 24), (13, 17), (20, 24)):
        x = torch.randn(2, in_channels, *size).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            expected, got = conv(x), packed(x)
        assert got.dtype == expected.dtype == dtype
        _assert_same_to_rounding(got, expected)
    assert len(packed._packed) == 2  # one packed weight per input shape, kept
    for rows in range(9, 9 + PACKED_SHAPES + 1):  # more shapes than it keeps: the oldest go
        x = torch.randn(1, in_channels, rows, 11).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            _assert_same_to_rounding(packed(x), conv(x))
            _assert_same_to_rounding(packed(x.contiguous()), conv(x.contiguous()))  # NCHW input as well
    assert len(packed._packed) == PACKED_SHAPES
    copied = copy.deepcopy(packed)  # the oneDNN-layout tensors are not copied: the copy packs its own
    buffer = io.BytesIO()
    torch.save(packed, buffer)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        assert torch.equal(copied(x), packed(x)) and len(copied._packed) == 1
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.float16):  # another autocast dtype decides
        assert packed(x).dtype == torch.float16


def test_pack_convolutions_replaces_the_plain_ones_only() -> None:
    model = UMSI(width=16, decoder_channels=((8,), (8,), (4,)), aspp_dilations=(2, 12)).eval()
    model.to(memory_format=torch.channels_last)  # as the predictor runs it on the CPU
    plain = [m for m in model.modules() if type(m) is nn.Conv2d]
    others = [m for m in model.modules() if isinstance(m, nn.Conv2d) and type(m) is not nn.Conv2d]
    assert others  # the ASPP's depthwise convolutions have their own forward
    x = (torch.randn(1, 3, 40, 56) * 50).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = model(x)
        assert pack_convolutions(model) == len(plain)
        got = model(x)
    assert [m.conv for m in model.modules() if isinstance(m, PackedConv2d)] == plain
    assert pack_convolutions(model) == 0  # packed already
    _assert_same_to_rounding(got.saliency, expected.saliency)
    _assert_same_to_rounding(got.logits, expected.logits)


def test_zero_padded_reuses_one_buffer_per_thread_and_shape() -> None:
    x, y = torch.randn(1, 3, 5, 6), torch.randn(1, 3, 5, 6)
    with torch.inference_mode():
        first = zero_padded(x, 2, 3)
        torch.testing.assert_close(first, F.pad(x, (3, 3, 2, 2)), rtol=0, atol=0)
        again = zero_padded(y, 2, 3)  # the same buffer, only its interior rewritten
        assert again.data_ptr() == first.data_ptr()
        torch.testing.assert_close(again, F.pad(y, (3, 3, 2, 2)), rtol=0, atol=0)
    with torch.no_grad():  # outside inference mode: another buffer (an inference tensor cannot be written here)
        assert zero_padded(x, 2, 3).data_ptr() != first.data_ptr()
    from_thread: list[int] = []
    with torch.inference_mode():
        worker = threading.Thread(target=lambda: from_thread.append(zero_padded(x, 2, 3).data_ptr()))
        worker.start()
        worker.join()
        assert from_thread and from_thread[0] != first.data_ptr()  # each thread has its own
        for rows in range(6, 6 + PADDED_BUFFERS):  # more shapes than it keeps: the oldest go
            zero_padded(torch.randn(1, 3, rows, 6), 2, 3)
        assert zero_padded(x, 2, 3).data_ptr() != first.data_ptr()


def test_zero_padded_never_mixes_paddings_of_one_padded_shape() -> None:
    """A 30×40 input padded by 12 and an 18×28 one padded by 18 are both 54×64 once padded: two buffers, or the
    second would keep the first's values in its border (the ASPP at 240×320, then at 144×224)."""
    torch.manual_seed(0)
    twelve, eighteen = DepthwiseConv2d(4, 3, 12).eval(), DepthwiseConv2d(4, 3, 18).eval()
    big, small = torch.randn(1, 4, 30, 40), torch.randn(1, 4, 18, 28)
    with torch.inference_mode():
        twelve(big)
        got = eighteen(small)
        expected = F.conv2d(small, eighteen.weight, None, 1, 18, 18, 4)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_packed_convolution_falls_back_for_autograd_tracing_and_changed_weights() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, padding=1)
    packed = PackedConv2d(conv)
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    packed(x).sum().backward()  # autograd: the plain convolution, whose gradient reaches the input and weight
    assert x.grad is not None and conv.weight.grad is not None
    with torch.no_grad():
        traced = torch.jit.trace(packed, x.detach())
        assert "mkldnn" not in str(traced.graph)  # an export keeps a standard Conv op
        before = packed(x.detach())
        conv.weight.mul_(-1)  # an in-place change packs the weight again
        _assert_same_to_rounding(packed(x.detach()), conv(x.detach()))
        assert not torch.allclose(packed(x.detach()), before)


@pytest.mark.parametrize("precision", ["bf16", "16"])
def test_low_precision_loads_pack_only_what_this_cpu_runs(precision: str, tmp_path: Path) -> None:
    """fp16 weights need AVX512-FP16 or AVX-NE-CONVERT for oneDNN's packed kernels: without them they stay plain
    convolutions (autocast), and ``umsi.load(..., precision="16")`` still predicts."""
    classes = ["a", "b", "c", "d", "e", "f"]
    ckpt = save_model(tmp_path / "tiny.ckpt", create_model("umsi_tiny"), (32, 40), classes, architecture="umsi_tiny")
    predictor = umsi.load(ckpt, precision=precision)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    packed = [m for m in predictor.network.modules() if isinstance(m, PackedConv2d)]
    assert bool(packed) == packing_available(dtype)
    maps, probabilities = predictor.forward(torch.randn(3, 3, 32, 40) * 50)
    assert maps.shape[0] == 3 and torch.isfinite(maps).all() and torch.allclose(probabilities.sum(1), torch.ones(3))
