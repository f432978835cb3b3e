"""The CPU speed-ups of the forward pass change no output beyond float rounding: the gather-free TF1 upsampling and
the decoder head before the last resize."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import keras_reference as ref
from umsi.models.heads import Decoder
from umsi.models.tf_ops import resize_bilinear


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
