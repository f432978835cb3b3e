"""The released UMSI: TF-exact ops, UMSI.official(), the h5py-only converter, and its checkpoint in eval/finetune.

Keras files are written by ``keras_h5`` (independent of src/, from the documented layout) and the expected
numbers come from NumPy implementations of the Keras/TF1 operations (``keras_reference``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from timm.models.xception import SeparableConv2d
from torch import nn

import keras_reference as ref
from keras_h5 import official_keras_layers, write_keras_h5
from umsi.inference.probe import suggested_order
from umsi.models import UMSI, count_parameters
from umsi.models.card import CARD_KEY, ModelCard
from umsi.models.registry import build_model
from umsi.models.tf_ops import Conv2dTFSame, MaxPool2dTFSame, resize_bilinear
from umsi.official import ConversionError, convert, convert_keras_file, keras_to_torch, read_keras_h5
from umsi.official.keras_layout import official_layers


def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32))


def nhwc(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().numpy().transpose(0, 2, 3, 1)


# --- TF-exact operations ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(30, 40), (15, 21), (7, 8), (60, 81)])
@pytest.mark.parametrize("scale", [2, 4])
def test_tf1_legacy_bilinear_matches_the_tf1_formula(size: tuple[int, int], scale: int) -> None:
    x = np.random.default_rng(0).standard_normal((2, *size, 3))
    out = resize_bilinear(nchw(x), (size[0] * scale, size[1] * scale), "tf1_legacy")
    expected = ref.resize_bilinear_tf1_nhwc(x, size[0] * scale, size[1] * scale)
    np.testing.assert_allclose(nhwc(out), expected, atol=1e-6)
    # and it is not PyTorch's half-pixel convention (the whole point)
    half_pixel = resize_bilinear(nchw(x), (size[0] * scale, size[1] * scale), "half_pixel")
    assert np.abs(nhwc(half_pixel) - expected).max() > 0.05


def test_tf1_legacy_bilinear_to_any_size() -> None:
    x = np.random.default_rng(1).standard_normal((1, 9, 13, 2))
    out = resize_bilinear(nchw(x), (37, 50), "tf1_legacy")
    np.testing.assert_allclose(nhwc(out), ref.resize_bilinear_tf1_nhwc(x, 37, 50), atol=1e-6)


@pytest.mark.parametrize("size", [(117, 157), (118, 158), (16, 21), (8, 9)])
def test_tf_same_max_pool_stride2(size: tuple[int, int]) -> None:
    x = np.random.default_rng(2).standard_normal((1, *size, 4))
    out = MaxPool2dTFSame(3, 2)(nchw(x))
    np.testing.assert_allclose(nhwc(out), ref.max_pool_same_nhwc(x, 3, 2), atol=1e-6)


@pytest.mark.parametrize("size", [(30, 40), (31, 41), (32, 33), (4, 5)])
def test_tf_same_stride3_global_conv(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(3)
    x, kernel = rng.standard_normal((1, *size, 5)), rng.standard_normal((3, 3, 5, 7)).astype(np.float32)
    conv = Conv2dTFSame(5, 7, 3, stride=3, bias=False)
    conv.weight.data = keras_to_torch("Conv2D", "kernel", kernel)
    expected = ref.conv2d_nhwc(x, kernel, stride=3, padding="same")
    np.testing.assert_allclose(nhwc(conv(nchw(x))), expected, atol=1e-4)


def test_even_sizes_need_the_asymmetric_pad() -> None:
    # the symmetric PyTorch pool gives the same shape on even sizes but different values
    x = np.random.default_rng(4).standard_normal((1, 16, 20, 3))
    expected = ref.max_pool_same_nhwc(x, 3, 2)
    assert np.abs(nhwc(nn.MaxPool2d(3, 2, 1)(nchw(x))) - expected).max() > 0.1


# --- single-layer weight mappings against the Keras operation ------------------------------------------------------


def test_conv2d_hwio_mapping() -> None:
    rng = np.random.default_rng(5)
    x, kernel, bias = rng.standard_normal((1, 9, 11, 4)), rng.standard_normal((3, 3, 4, 6)), rng.standard_normal(6)
    conv = nn.Conv2d(4, 6, 3, padding=2, dilation=2)
    conv.weight.data = keras_to_torch("Conv2D", "kernel", kernel.astype(np.float32))
    conv.bias.data = keras_to_torch("Conv2D", "bias", bias.astype(np.float32))
    expected = ref.conv2d_nhwc(x, kernel, bias, dilation=2, padding="same")
    np.testing.assert_allclose(nhwc(conv(nchw(x))), expected, atol=1e-4)


def test_depthwise_conv_mapping() -> None:
    rng = np.random.default_rng(6)
    x, kernel = rng.standard_normal((1, 10, 12, 5)), rng.standard_normal((3, 3, 5, 1)).astype(np.float32)
    conv = nn.Conv2d(5, 5, 3, padding=6, dilation=6, groups=5, bias=False)
    conv.weight.data = keras_to_torch("DepthwiseConv2D", "depthwise_kernel", kernel)
    expected = ref.depthwise_conv2d_nhwc(x, kernel, dilation=6, padding="same")
    np.testing.assert_allclose(nhwc(conv(nchw(x))), expected, atol=1e-4)


def test_separable_conv_mapping() -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 8, 9, 4))
    depthwise, pointwise = rng.standard_normal((3, 3, 4, 1)), rng.standard_normal((1, 1, 4, 6))
    layer = SeparableConv2d(4, 6, 3, padding=1)  # the encoder's separable conv (timm legacy Xception)
    layer.conv1.weight.data = keras_to_torch("SeparableConv2D", "depthwise_kernel", depthwise.astype(np.float32))
    layer.pointwise.weight.data = keras_to_torch("SeparableConv2D", "pointwise_kernel", pointwise.astype(np.float32))
    expected = ref.separable_conv2d_nhwc(x, depthwise, pointwise, padding="same")
    np.testing.assert_allclose(nhwc(layer(nchw(x))), expected, atol=1e-4)


def test_dense_mapping() -> None:
    rng = np.random.default_rng(8)
    x, kernel, bias = rng.standard_normal((3, 256)), rng.standard_normal((256, 6)), rng.standard_normal(6)
    dense = nn.Linear(256, 6)
    dense.weight.data = keras_to_torch("Dense", "kernel", kernel.astype(np.float32))
    dense.bias.data = keras_to_torch("Dense", "bias", bias.astype(np.float32))
    out = dense(torch.from_numpy(x).float()).detach().double().numpy()
    np.testing.assert_allclose(out, ref.dense(x, kernel, bias), atol=1e-4)


@pytest.mark.parametrize("eps", [1e-3, 1e-5])
def test_batchnorm_mapping_with_its_epsilon(eps: float) -> None:
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 5, 6, 4))
    gamma, beta, mean = rng.uniform(0.5, 1.5, 4), rng.standard_normal(4), rng.standard_normal(4)
    var = rng.uniform(1e-4, 1e-2, 4)  # small variances make ε matter
    bn = nn.BatchNorm2d(4, eps=eps).eval()
    for name, value in zip(("weight", "bias", "running_mean", "running_var"), (gamma, beta, mean, var), strict=True):
        getattr(bn, name).data = keras_to_torch("BatchNormalization", name, value.astype(np.float32))
    expected = ref.batch_norm_inference(x, gamma, beta, mean, var, eps)
    np.testing.assert_allclose(nhwc(bn(nchw(x))), expected, rtol=1e-4, atol=1e-4)


# --- UMSI.official() -----------------------------------------------------------------------------------------------


def test_official_network_shape_and_numerics() -> None:
    model = UMSI.official()
    assert count_parameters(model) == (29_850_799, 69_888)  # Keras: 29,920,687
    encoder_bns = [m for m in model.encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    head_bns = [m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) and not n.startswith("encoder")]
    assert len(encoder_bns) == 40 and {m.eps for m in encoder_bns} == {1e-3}
    assert len(head_bns) == 9 and {m.eps for m in head_bns} == {1e-5}
    assert {m.momentum for m in encoder_bns + head_bns} == {0.01}
    assert model.decoder.upsampling == "tf1_legacy"
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 37, 45))
    assert out.saliency.shape == (1, 1, 74, 90) and out.logits.shape == (1, 6)


def test_model_config_builds_the_official_network(hydra_conf) -> None:
    cfg = hydra_conf(["model=umsi_official"])
    assert cfg.model.architecture == "umsi_official"
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True))
    assert model.decoder.upsampling == "tf1_legacy" and isinstance(model.global_branch.conv[0], Conv2dTFSame)
    assert count_parameters(model) == (29_850_799, 69_888)


# --- the converter ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict]]:
    """The released layout with random weights (120 MB) and the arrays written (Keras shapes)."""
    folder = tmp_path_factory.mktemp("keras")
    path = folder / "umsi_full.h5"
    yield path, write_keras_h5(path, seed=0)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def converted(keras_file: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("converted")
    out = folder / "umsi_official.ckpt"
    convert(keras_file[0], out)
    yield out
    shutil.rmtree(folder, ignore_errors=True)


def test_reference_layer_list_is_the_documented_one() -> None:
    layers = official_keras_layers()
    weighted = [name for name, _, variables in layers if variables]
    assert len(layers) == 181 and len(weighted) == 107
    assert sum(int(np.prod(s)) for _, _, vs in layers for _, s in vs) == 29_920_687
    assert sorted(weighted) == sorted(layer.name for layer in official_layers())


def test_converts_with_every_key_filled(keras_file: tuple[Path, dict]) -> None:
    path, written = keras_file
    keras = read_keras_h5(path)
    assert keras.values == 29_920_687 and keras.attributes["keras_version"] == "2.3.1"
    state, _ = convert_keras_file(keras)
    result = UMSI.official().load_state_dict(state, strict=False)
    assert result.unexpected_keys == [] and all(k.endswith("num_batches_tracked") for k in result.missing_keys)
    torch.testing.assert_close(
        state["encoder.body.conv1.weight"], torch.from_numpy(written["block1_conv1"]["kernel"].transpose(3, 2, 0, 1))
    )
    torch.testing.assert_close(
        state["encoder.body.block12.skip.weight"], torch.from_numpy(written["conv2d_4"]["kernel"].transpose(3, 2, 0, 1))
    )
    torch.testing.assert_close(state["classifier.weight"], torch.from_numpy(written["out_classif"]["kernel"].T))
    torch.testing.assert_close(
        state["aspp.branches.3.0.weight"],
        torch.from_numpy(written["aspp_csepd18_depthwise"]["depthwise_kernel"].transpose(2, 3, 0, 1)),
    )
    torch.testing.assert_close(
        state["encoder.body.bn4.running_var"], torch.from_numpy(written["block14_sepconv2_bn"]["moving_variance"])
    )


def _keras_forward(w: dict[str, dict[str, np.ndarray]], image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The released graph (umsi-reference §1) in NumPy on NHWC float64: (map (1, 2H, 2W, 1), logits (1, 6))."""
    relu = lambda x: np.maximum(x, 0.0)  # noqa: E731

    def bn(x: np.ndarray, name: str, eps: float = 1e-3) -> np.ndarray:
        v = w[name]
        return ref.batch_norm_inference(x, v["gamma"], v["beta"], v["moving_mean"], v["moving_variance"], eps)

    def sep(x: np.ndarray, name: str) -> np.ndarray:
        return ref.separable_conv2d_nhwc(x, w[name]["depthwise_kernel"], w[name]["pointwise_kernel"])

    def conv(x: np.ndarray, name: str, **kw) -> np.ndarray:
        return ref.conv2d_nhwc(x, w[name]["kernel"], w[name].get("bias"), **kw)

    x = relu(bn(conv(image, "block1_conv1", stride=2, padding="valid"), "block1_conv1_bn"))
    x = relu(bn(conv(x, "block1_conv2", padding="valid"), "block1_conv2_bn"))
    for block, residual, stride in ((2, 1, 2), (3, 2, 2), (4, 3, 1), (13, 4, 1)):
        skip = bn(conv(x, f"conv2d_{residual}", stride=stride), f"batch_normalization_{residual}")
        y = x if block == 2 else relu(x)
        y = relu(bn(sep(y, f"block{block}_sepconv1"), f"block{block}_sepconv1_bn"))
        y = bn(sep(y, f"block{block}_sepconv2"), f"block{block}_sepconv2_bn")
        x = ref.max_pool_same_nhwc(y, 3, stride) + skip
        if block == 4:
            for middle in range(5, 13):
                y = x
                for i in (1, 2, 3):
                    y = bn(sep(relu(y), f"block{middle}_sepconv{i}"), f"block{middle}_sepconv{i}_bn")
                x = x + y
    x = relu(bn(sep(x, "block14_sepconv1"), "block14_sepconv1_bn"))
    features = relu(bn(sep(x, "block14_sepconv2"), "block14_sepconv2_bn"))
    g = relu(bn(conv(features, "global_conv", stride=3), "global_BN", 1e-5)).mean(axis=(1, 2))
    g = ref.dense(g, w["global_dense"]["kernel"], w["global_dense"]["bias"])
    logits = ref.dense(g, w["out_classif"]["kernel"], w["out_classif"]["bias"])
    branches = [relu(bn(conv(features, "aspp_csep0"), "aspp0_BN", 1e-5))]
    for d in (6, 12, 18):
        name = f"aspp_csepd{d}"
        y = ref.depthwise_conv2d_nhwc(features, w[f"{name}_depthwise"]["depthwise_kernel"], dilation=d)
        y = relu(bn(y, f"{name}_depthwise_BN", 1e-5))
        branches.append(relu(bn(conv(y, f"{name}_pointwise"), f"{name}_pointwise_BN", 1e-5)))
    fusion = ref.dense(g, w["dense_fusion"]["kernel"], w["dense_fusion"]["bias"])
    tiled = np.broadcast_to(fusion[:, None, None, :], (*features.shape[:3], fusion.shape[-1]))
    x = relu(bn(conv(np.concatenate([*branches, tiled], axis=-1), "concat_projection"), "concat_projection_BN", 1e-5))
    for layers, size in ((("dec_c1", "dec_c2"), None), (("dec_c3", "dec_c4"), None), (("dec_c5",), image.shape[1:3])):
        for name in layers:
            x = relu(conv(x, name, dilation=2))
        out_h, out_w = (2 * size[0], 2 * size[1]) if size else (2 * x.shape[1], 2 * x.shape[2])
        x = ref.resize_bilinear_tf1_nhwc(x, out_h, out_w)
    return relu(conv(x, "dec_c_out")), logits


def test_converted_network_matches_a_numpy_keras_forward(keras_file: tuple[Path, dict]) -> None:
    # 37×45: both stride-2 pools see even sizes in one axis and the global conv pads 0/1 (TF asymmetric cases)
    path, written = keras_file
    _, model = convert_keras_file(read_keras_h5(path))
    image = np.random.default_rng(10).uniform(-120, 150, (1, 37, 45, 3))
    expected_map, expected_logits = _keras_forward(written, image)
    with torch.no_grad():
        out = model(nchw(image))
    scale = np.abs(expected_map).max()
    assert scale > 0
    np.testing.assert_allclose(nhwc(out.saliency), expected_map, atol=1e-4 * scale)
    np.testing.assert_allclose(out.logits.double().numpy(), expected_logits, atol=1e-4 * np.abs(expected_logits).max())


def test_weights_only_file_and_renumbered_residuals(tmp_path: Path) -> None:
    # save_weights layout, an inner scope suffix, and residual layers numbered by a busier Keras session
    rename = {f"conv2d_{i}": f"conv2d_{i + 10}" for i in range(1, 5)}
    rename |= {f"batch_normalization_{i}": f"batch_normalization_{i + 20}" for i in range(1, 5)}
    path = tmp_path / "weights.h5"
    written = write_keras_h5(path, seed=1, weights_only=True, rename=rename, scope_suffix="_1")
    state, _ = convert_keras_file(read_keras_h5(path))
    torch.testing.assert_close(
        state["encoder.body.block3.skip.weight"], torch.from_numpy(written["conv2d_13"]["kernel"].transpose(3, 2, 0, 1))
    )


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "umsi.cli.convert_keras", *args], capture_output=True, text=True, timeout=300
    )


def test_truncated_file_is_refused_and_nothing_written(keras_file: tuple[Path, dict], tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(keras_file[0].read_bytes()[:60_000_000])
    out = tmp_path / "out.ckpt"
    result = _run_cli(str(truncated), str(out))
    assert result.returncode == 2 and "truncated.h5" in result.stderr and "Nothing was written" in result.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [truncated]


def test_other_model_wrong_classes_and_bad_order_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "umsi_skip.h5"  # like the unreleased `umsi` function: skip decoder, no dec_c5
    write_keras_h5(other, drop_layers=["dec_c5", "dec_c_out"], rename={"dec_c4": "decskip_c4"})
    with pytest.raises(
        ConversionError, match=r"missing \(3\): dec_c4, dec_c5, dec_c_out(.|\n)*unexpected \(1\): decskip_c4"
    ):
        convert(other, tmp_path / "a.ckpt")
    five = tmp_path / "five_classes.h5"
    write_keras_h5(five, num_classes=5)
    with pytest.raises(ConversionError, match="'out_classif' has 5 classes, expected 6"):
        convert(five, tmp_path / "b.ckpt")
    with pytest.raises(ConversionError, match="--class-order gives 2 names"):
        convert(five, tmp_path / "c.ckpt", class_order="a,b", num_classes=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["five_classes.h5", "umsi_skip.h5"]


def test_architecture_json_is_checked(tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "eps.h5"
    write_keras_h5(path)
    with h5py.File(path, "r+") as f:  # a model whose global_BN used Keras' default ε
        config = json.loads(f.attrs["model_config"])
        layer = next(x for x in config["config"]["layers"] if x["config"]["name"] == "global_BN")
        layer["config"]["epsilon"] = 0.001
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ConversionError, match=r"global_BN: epsilon=0\.001 in the file"):
        convert(path, tmp_path / "x.ckpt")


def test_existing_output_is_kept_without_overwrite(keras_file: tuple[Path, dict], tmp_path: Path) -> None:
    out = tmp_path / "out.ckpt"
    out.write_text("previous")
    result = _run_cli(str(keras_file[0]), str(out))
    assert result.returncode == 2 and "--overwrite" in result.stderr and out.read_text() == "previous"


# --- the converted checkpoint in the rest of the framework --------------------------------------------------------


def test_checkpoint_records_classes_and_provenance(converted: Path) -> None:
    state = torch.load(converted, map_location="cpu", weights_only=True)
    assert state["hyper_parameters"]["class_names"][-1] == "natural_images"
    assert state["hyper_parameters"]["model"]["upsampling"] == "tf1_legacy"
    info = state["umsi_conversion"]
    assert info["keras_values"] == 29_920_687 and len(info["source_sha256"]) == 64 and not info["class_order_given"]
    card = ModelCard.from_dict(state[CARD_KEY])  # the card: what load_model reads
    assert (card.architecture, card.input_size, card.preprocessing.name) == ("umsi_official", (240, 320), "official")
    assert card.source == {"kind": "converted", "file": Path(info["source_file"]).name, "sha256": info["source_sha256"]}
    assert card.class_names == tuple(state["hyper_parameters"]["class_names"]) and card.name == "UMSI (official)"


def test_cli_with_class_order(keras_file: tuple[Path, dict], tmp_path: Path) -> None:
    order = "webpages,natural_images,advertisements,infographics,mobile_uis,movie_posters"
    out = tmp_path / "ordered.ckpt"
    result = _run_cli(str(keras_file[0]), str(out), "--class-order", order)
    assert result.returncode == 0, result.stderr
    assert (
        "converted 107 layers, 29,920,687 values (29,850,799 parameters + 69,888 BatchNorm statistics)" in result.stdout
    )
    state = torch.load(out, map_location="cpu", weights_only=True)
    assert (
        state["hyper_parameters"]["class_names"] == order.split(",") and state["umsi_conversion"]["class_order_given"]
    )


def test_finetune_loads_and_reorders_the_classifier(converted: Path, tiny_cfg, synthetic_root: Path) -> None:
    from umsi.training.module import UMSILitModule, load_weights
    from umsi.training.runner import _container

    cfg, _ = tiny_cfg("model=umsi_official", "stage=finetune")
    stored = torch.load(converted, map_location="cpu", weights_only=True)
    names = list(stored["hyper_parameters"]["class_names"])
    data_order = names[::-1]
    module = UMSILitModule(_container(cfg.model), _container(cfg.loss), _container(cfg.optimizer), data_order)
    load_weights(module, converted)
    expected = stored["state_dict"]["model.classifier.weight"][[names.index(n) for n in data_order]]
    torch.testing.assert_close(module.model.classifier.weight, expected)
    torch.testing.assert_close(
        module.model.encoder.body.conv1.weight, stored["state_dict"]["model.encoder.body.conv1.weight"]
    )


def test_finetune_stage_from_converted_weights(converted: Path, tiny_cfg, tmp_path: Path) -> None:
    from umsi.training.runner import run

    cfg, overrides = tiny_cfg(
        "model=umsi_official",
        "stage=finetune",
        f"init_ckpt={converted}",
        "data.salicon_per_epoch=4",
        "data.val_salicon_items=2",
    )
    summary = run(cfg, overrides)
    assert np.isfinite(summary["model"]["cc"])


def test_eval_reports_an_official_row(converted: Path, synthetic_root: Path, tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir

    from umsi.evaluation.runner import evaluate
    from umsi.paths import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="eval",
            overrides=[
                f"paths.root_dir={tmp_path}",
                f"paths.datasets_dir={synthetic_root}",
                f"checkpoints=[{converted}]",
                "progress=false",
                "examples=0",
                "logger.wandb=false",
                "input_size=[64,80]",  # what is checked is the row, not the file's 240×320
            ],
        )
    evaluate(cfg, tmp_path / "report")
    tables = (tmp_path / "report" / "tables.md").read_text()
    assert "| UMSI (official) |" in tables


def test_probe_classes_prints_a_histogram(converted: Path, synthetic_root: Path) -> None:
    folders = [synthetic_root / "imp1k" / "imgs" / "webpages", synthetic_root / "salicon" / "images" / "val"]
    cmd = [sys.executable, "-m", "umsi.cli.probe_classes", str(converted), *map(str, folders), "--limit", "3"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(("| webpages |", "| val |"))]
    assert len(rows) == 2 and all(sum(map(int, r.split("|")[3:9])) == 3 for r in rows)


def test_suggested_order() -> None:
    names = ["a", "b", "c"]
    hist = {"natural_images": np.array([0, 9, 1]), "posters": np.array([7, 1, 0])}
    assert suggested_order(hist, names) == ["posters", "natural_images", "c"]
    assert suggested_order({"x": np.array([5, 0, 0]), "y": np.array([4, 1, 0])}, names) is None
