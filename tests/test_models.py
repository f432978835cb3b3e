"""UMSI network: shapes for any input size, exact parameter counts, encoders, local weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from umsi.models import UMSI, PretrainedWeightsError, build_encoder, count_parameters


@pytest.fixture(scope="module")
def default_model() -> UMSI:
    torch.manual_seed(0)
    return UMSI().eval()


def test_default_parameter_and_buffer_counts(default_model: UMSI) -> None:
    params, bn_stats = count_parameters(default_model)
    assert params == 29_850_799
    assert bn_stats == 69_888
    assert params + bn_stats == 29_920_687  # what Keras reports for the released model


@pytest.mark.parametrize("size", [(32, 40), (48, 64), (33, 47), (64, 32), (57, 91)])
def test_output_is_twice_the_input_for_any_size(default_model: UMSI, size: tuple[int, int]) -> None:
    with torch.no_grad():
        out = default_model(torch.randn(2, 3, *size))
    assert out.saliency.shape == (2, 1, 2 * size[0], 2 * size[1])
    assert out.logits.shape == (2, 6)
    assert (out.saliency >= 0).all()


def test_encoder_grid_follows_official_strides() -> None:
    encoder = build_encoder("legacy_xception", 8).eval()
    with torch.no_grad():
        assert encoder(torch.zeros(1, 3, 240, 320)).shape == (1, 2048, 30, 40)
        # stride 16 keeps only Keras block 13 at stride 1
        assert build_encoder("legacy_xception", 16).eval()(torch.zeros(1, 3, 240, 320)).shape[-2:] == (15, 20)


def test_config_controls_widths_classes_and_scale() -> None:
    model = UMSI(num_classes=4, width=32, decoder_channels=[[16], [8]], aspp_dilations=[2, 4], output_scale=1.0)
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 40, 48))
    assert out.saliency.shape == (1, 1, 40, 48)
    assert out.logits.shape == (1, 4)
    assert model.aspp.out_channels == 32 * 3


def test_aligned_xception_at_output_stride_16() -> None:
    model = UMSI(encoder="xception41", output_stride=16, width=32, decoder_channels=[[16], [8], [8]]).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96))
    assert out.saliency.shape == (1, 1, 128, 192)


def test_unknown_encoder_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"model\.encoder="):
        build_encoder("resnet5000")


def test_missing_pretrained_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PretrainedWeightsError, match=r"model.pretrained_file=.*does not exist"):
        UMSI(pretrained_file=str(tmp_path / "nope.pth"))


def test_pretrained_encoder_loads_from_a_local_file(tmp_path: Path) -> None:
    torch.manual_seed(1)
    reference = timm.create_model("legacy_xception", pretrained=False)
    path = tmp_path / "legacy_xception.pth"
    torch.save(reference.state_dict(), path)
    model = UMSI(pretrained_file=str(path))
    loaded = model.encoder.body.state_dict()
    for name, value in reference.state_dict().items():
        if not name.startswith("fc."):
            assert torch.equal(loaded[name], value), name


def test_wrong_pretrained_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pth"
    torch.save({"something": torch.zeros(3)}, path)
    with pytest.raises(PretrainedWeightsError, match="could not load encoder weights"):
        UMSI(pretrained_file=str(path))
