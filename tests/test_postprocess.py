"""Post-processing of predicted maps (umsi.data.postprocess): the Gaussian blur and the one path blur → un-letterbox
that Predictor, umsi-eval's scoring and the report share."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch

from umsi.data.postprocess import gaussian_blur, postprocess_maps
from umsi.data.transforms import letterbox, unletterbox


def test_gaussian_blur_matches_scipy_reflect() -> None:
    x = torch.rand(2, 9, 13, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for sigma in (0.8, 3.0, 7.0):  # 7 > the map size: reflection repeats
        expected = np.stack([scipy.ndimage.gaussian_filter(a, sigma, mode="reflect", truncate=4.0) for a in x.numpy()])
        np.testing.assert_allclose(gaussian_blur(x, sigma).numpy(), expected, atol=1e-12)
        assert gaussian_blur(x[:, None].float(), sigma).shape == (2, 1, 9, 13)
    assert torch.equal(gaussian_blur(x, 0), x)
    with pytest.raises(ValueError, match=r"\(B, H, W\) or \(B, 1, H, W\)"):
        gaussian_blur(x[0], 1.0)


def test_postprocess_maps_blurs_then_unletterboxes_each_map_to_its_size() -> None:
    maps = torch.rand(3, 1, 24, 32, generator=torch.Generator().manual_seed(2))
    sizes = [(30, 20), None, (12, 48)]
    out = postprocess_maps(maps, sizes, blur_sigma=2.0)
    blurred = [scipy.ndimage.gaussian_filter(m.double().numpy(), 2.0, mode="reflect", truncate=4.0) for m in maps[:, 0]]
    assert [a.shape for a in out] == [(30, 20), (24, 32), (12, 48)]
    assert all(a.dtype == np.float32 for a in out)
    np.testing.assert_allclose(out[0], unletterbox(blurred[0].astype(np.float32), (30, 20)), atol=1e-5)
    np.testing.assert_allclose(out[1], blurred[1], atol=1e-6)  # None: the letterboxed frame
    np.testing.assert_allclose(out[2], unletterbox(blurred[2].astype(np.float32), (12, 48)), atol=1e-5)
    # no blur: exactly unletterbox; (B, H, W) input is the same as (B, 1, H, W)
    plain = postprocess_maps(maps[:, 0], [(30, 20), None, (12, 48)], blur_sigma=None)
    np.testing.assert_array_equal(plain[0], unletterbox(maps[0, 0].numpy(), (30, 20)))
    np.testing.assert_array_equal(plain[1], maps[1, 0].numpy())


def test_postprocess_maps_round_trips_a_letterboxed_map() -> None:
    ramp = np.tile(np.linspace(0, 1, 90, dtype=np.float32), (60, 1))  # 60×90 image in a 48×64 frame
    (back,) = postprocess_maps(torch.from_numpy(letterbox(ramp, (48, 64)))[None], [(60, 90)])
    assert back.shape == (60, 90) and np.abs(back - ramp).mean() < 0.03


def test_postprocess_maps_refuses_a_size_count_that_does_not_match() -> None:
    with pytest.raises(ValueError, match="2 output sizes for 3 maps"):
        postprocess_maps(torch.zeros(3, 8, 8), [(8, 8), (8, 8)])
    with pytest.raises(ValueError, match=r"\(B, H, W\) or \(B, 1, H, W\)"):
        postprocess_maps(torch.zeros(8, 8), [(8, 8)])
