"""umsi-export quantize=int8: ONNX Runtime static quantization of the tests' tiny model, calibrated on a handful of
images, with the accuracy check against fp32 (kept with its report in the file; refused with the numbers and no
file left when the thresholds are not met), and the int8 file through umsi.load, umsi-predict and umsi-serve."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import requests
import torch
from hydra import compose, initialize_config_dir

import umsi
from test_serve import CLASSES, design_picture
from umsi.checkpoints.exported import load_exported
from umsi.checkpoints.loading import save_model
from umsi.evaluation.runner import _load_models
from umsi.inference.export import export_from_config
from umsi.inference.predict import run_predict
from umsi.inference.quantize import AccuracyCheckError, AccuracyThresholds, accuracy_report
from umsi.models import create_model
from umsi.paths import CONFIG_DIR
from umsi.serving.process import start_server, stop_server

INPUT_SIZE = (32, 40)
N_CALIBRATION, N_CHECK = 4, 4


def _export_cfg(ckpt: Path, folder: Path, output: Path, *extra: str):
    overrides = [f"ckpt={ckpt}", f"output={output}", "quantize=int8", f"calibration_images={folder}"]
    overrides += [f"n={N_CALIBRATION}", f"n_check={N_CHECK}", *extra]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("export", overrides)


@pytest.fixture(scope="module")
def calibration_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 poster-like pictures (the serve test's design, shifted and recoloured): 4 calibrate, 4 are held out."""
    folder = tmp_path_factory.mktemp("calibration")
    base = design_picture(120, 160)
    for i in range(N_CALIBRATION + N_CHECK):
        picture = np.roll(base, shift=(9 * i, 17 * i), axis=(0, 1))
        picture = np.ascontiguousarray(picture[..., [(i + k) % 3 for k in range(3)]])
        cv2.imwrite(str(folder / f"design_{i}.png"), picture)
    return folder


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A seeded random ``umsi_tiny`` (the tests' tiny network, conf/model/tiny.yaml) at 32×40, as load_model reads
    it."""
    folder = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    yield save_model(folder / "tiny.ckpt", create_model("umsi_tiny"), INPUT_SIZE, CLASSES, architecture="umsi_tiny")
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def int8_model(
    tmp_path_factory: pytest.TempPathFactory, calibration_folder: Path, tiny_checkpoint: Path
) -> Iterator[tuple[Path, Path]]:
    """(the int8 file of the tiny checkpoint, the checkpoint)."""
    folder = tmp_path_factory.mktemp("int8")
    ckpt = tiny_checkpoint
    output = folder / "tiny_int8.onnx"
    # the random network's maps are nearly flat: its int8 CC is lower than a trained model's, hence 0.9 here
    cfg = _export_cfg(ckpt, calibration_folder, output, "min_cc=0.9", "max_kl=0.05", "min_class_agreement=0.75")
    yield export_from_config(cfg), ckpt
    shutil.rmtree(folder, ignore_errors=True)


def test_int8_export_is_quantized_and_carries_calibration_and_accuracy_report(
    int8_model: tuple[Path, Path], calibration_folder: Path
) -> None:
    path, _ = int8_model
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    card = load_exported(path).card  # the model card, with the calibration set and the accuracy report
    assert list(card.class_names) == CLASSES and card.input_size == INPUT_SIZE
    assert card.source["kind"] == "exported" and card.source["file"] == "tiny.ckpt"
    quantization = card.quantization
    assert quantization["precision"] == "int8" and "QDQ" in quantization["method"]
    calibration = quantization["calibration"]
    assert calibration["folder"] == str(calibration_folder) and calibration["n"] == N_CALIBRATION
    report = quantization["accuracy_check"]
    held_out = {report["cc"]["worst_image"], report["kl"]["worst_image"]}
    assert len(calibration["files"]) == N_CALIBRATION and not held_out & set(calibration["files"])
    assert report["images"] == N_CHECK and report["passed"]
    assert report["thresholds"] == {"min_cc": 0.9, "max_kl": 0.05, "min_class_agreement": 0.75}
    assert 0.9 <= report["cc"]["worst"] <= report["cc"]["mean"] <= 1.0
    assert 0.0 <= report["kl"]["mean"] <= report["kl"]["worst"] <= 0.05
    predictor = umsi.load(path)
    prediction = predictor.predict(str(calibration_folder / "design_0.png"))
    assert prediction.heatmap.shape == (120, 160) and prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    # umsi-eval's loader takes the file like a checkpoint: the same network outputs, the card's names and size
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        (loaded,) = _load_models(compose("eval", [f"checkpoints=[{path}]", "names=[int8]"]))
    assert loaded.name == "int8" and loaded.class_names == CLASSES and loaded.input_size == INPUT_SIZE
    image = predictor.preprocess(cv2.imread(str(calibration_folder / "design_1.png")))[None]
    assert torch.equal(loaded.model(image).saliency, predictor.network(image).saliency)


def test_int8_export_refuses_a_model_below_the_thresholds_and_leaves_no_file(
    tiny_checkpoint: Path, calibration_folder: Path, tmp_path: Path
) -> None:
    """The whole export (quantization and accuracy check) with impossible thresholds."""
    output = tmp_path / "refused.onnx"
    cfg = _export_cfg(tiny_checkpoint, calibration_folder, output, "min_cc=1.01", "max_kl=0", "min_class_agreement=1")
    with pytest.raises(AccuracyCheckError) as info:
        export_from_config(cfg)
    message = str(info.value)
    assert "nothing was written" in message and "\n" not in message
    for text in ("map CC worst", "design_", "mean", "(≥ 1.01 required)", "KL worst", "class agreement"):
        assert text in message
    assert list(tmp_path.iterdir()) == []  # neither the output nor a temporary file


def test_accuracy_report_names_the_worst_image_and_the_disagreements() -> None:
    maps = torch.rand(3, 8, 10)
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    noisy = maps.clone()
    noisy[1] = torch.rand(8, 10)  # image b: an unrelated map and the other class
    flipped = logits.clone()
    flipped[1] = torch.tensor([1.0, 0.0])
    report = accuracy_report((maps, logits), (noisy, flipped), ["a", "b", "c"], AccuracyThresholds())
    assert report["cc"]["worst_image"] == report["kl"]["worst_image"] == "b"
    assert report["class_agreement"] == pytest.approx(2 / 3) and report["class_disagreements"] == ["b"]
    assert not report["passed"]
    same = accuracy_report((maps, logits), (maps * 3.0, logits), ["a", "b", "c"])
    assert same["passed"] and same["cc"]["worst"] == pytest.approx(1.0) and same["kl"]["worst"] < 1e-6


def test_serve_answers_for_the_int8_file_what_umsi_predict_writes(
    int8_model: tuple[Path, Path], calibration_folder: Path, tmp_path: Path
) -> None:
    path, _ = int8_model
    image = calibration_folder / "design_5.png"
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("predict", [f"ckpt={path}", f"input={image}", "progress=false", "num_workers=0"])
    assert run_predict(cfg, tmp_path / "predict") == 0
    row = json.loads((tmp_path / "predict" / "predictions.json").read_text())["predictions"][0]
    expected = (tmp_path / "predict" / row["heatmap"]).read_bytes()
    server = start_server([f"ckpt={path}", "timeout=900"], tmp_path / "serve" / "umsi-serve.log")
    try:
        response = requests.post(
            f"{server.url}/predict", files={"image": (image.name, image.read_bytes())}, timeout=300
        )
    finally:
        stop_server(server)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert base64.b64decode(answer["heatmap_png"]) == expected  # the same PNG, byte for byte
    assert answer["class"] == row["class"]
    for name, p in answer["probabilities"].items():
        assert abs(p - row[f"p_{name}"]) <= 1e-6, name


def test_bf16_on_the_cpu_runs_in_bf16_and_stays_close_to_fp32(tiny_checkpoint: Path, calibration_folder: Path) -> None:
    """precision=bf16 on the CPU: autocast with oneDNN's bf16 kernels changes the maps a little (so it ran in
    bf16), and the accuracy report against fp32 reads them as close."""
    fp32, bf16 = umsi.load(tiny_checkpoint), umsi.load(tiny_checkpoint, precision="bf16")
    files = sorted(calibration_folder.iterdir())
    images = torch.stack([fp32.preprocess(cv2.imread(str(f))) for f in files])
    reference, candidate = fp32.forward(images), bf16.forward(images)
    assert not torch.equal(reference[0], candidate[0])
    # its convolution weights are stored in bf16 once: what autocast's casts on every call of a float32-weight copy
    # give (to float rounding: the packed and unpacked oneDNN kernels may sum in another order)
    convolutions = [m for m in bf16.network.modules() if isinstance(m, torch.nn.Conv2d)]
    assert {m.weight.dtype for m in convolutions} == {torch.bfloat16}
    autocast_only = umsi.load(tiny_checkpoint)
    autocast_only.precision, autocast_only.chunk_size = "bf16", bf16.chunk_size
    expected_maps = autocast_only.forward(images)[0]
    assert float((candidate[0] - expected_maps).abs().max()) <= 1e-3 * float(expected_maps.max())
    assert float((candidate[0] - reference[0]).abs().max()) > 1e-3 * float(reference[0].max())  # unlike fp32
    report = accuracy_report(reference, candidate, [f.name for f in files], AccuracyThresholds(0.95, 0.05, 0.75))
    assert report["passed"], report
