"""The model card: every model file describes itself (architecture by registered name, classes, input size,
preprocessing, source), so a checkpoint copied out of its run folder predicts, exports and serves as inside it;
files written before the card load with one warning; ``umsi.load`` imports no training-only package."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

import umsi
from conftest import tiny_overrides
from umsi.checkpoints.files import read_checkpoint
from umsi.checkpoints.loading import load_model, read_card, save_model
from umsi.data.transforms import normalize_image
from umsi.errors import CheckpointError, ConfigError
from umsi.inference.export import export_from_config
from umsi.inference.predictor import Predictor
from umsi.models.card import (
    CARD_KEY,
    DEFAULT_INPUT_SIZE,
    ModelCard,
    Preprocessing,
    get_preprocessing,
    register_preprocessing,
)
from umsi.models.registry import create_model, default_card, list_models, model_config
from umsi.models.umsi import UMSI
from umsi.paths import CONFIG_DIR
from umsi.serving.server import describe_model

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def timm_run(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> Iterator[Path]:
    """A tiny 1-epoch pretrain with ``data.preprocessing=timm`` at 64×80; yields its best checkpoint."""
    from umsi.training.runner import run

    outputs = tmp_path_factory.mktemp("card_outputs")
    run_dir = outputs / "2026-02-02" / "10-00-00"
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        overrides = [
            *tiny_overrides(synthetic_root, run_dir),
            "stage=pretrain",
            "data.input_size=[64,80]",
            "data.preprocessing=timm",
        ]
        run(compose(config_name="train", overrides=overrides), overrides)
    yield sorted((run_dir / "checkpoints").glob("epoch*.ckpt"))[0]
    shutil.rmtree(outputs, ignore_errors=True)


def _export_metadata(ckpt: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The metadata JSON ``umsi-export ckpt=<ckpt> format=onnx`` hands to the file writer (the writer itself and
    its parity check are tested in test_export.py; here they are stood in for, to keep the test fast)."""
    from umsi.inference import export as export_module

    written: list[str] = []

    def record(model: torch.nn.Module, path: Path, fmt: str, size: tuple, metadata: dict, opset: int) -> Path:
        written.append(json.dumps({**metadata, "input_size": list(size)}, sort_keys=True))
        Path(path).write_bytes(b"stand-in")
        return Path(path)

    monkeypatch.setattr(export_module, "export_model", record)
    monkeypatch.setattr(export_module, "load_exported", lambda path, device: None)
    monkeypatch.setattr(export_module, "parity_check", lambda *a, **k: {"saliency": 0.0, "logits": 0.0})
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        overrides = [f"ckpt={ckpt}", f"output={out}", f"paths.root_dir={out.parent}"]
        export_from_config(compose(config_name="export", overrides=overrides))
    return written[0]


def test_a_copied_checkpoint_predicts_exports_and_serves_as_in_its_run_folder(
    timm_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "elsewhere" / timm_run.name
    copy.parent.mkdir()
    shutil.copy2(timm_run, copy)
    image = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    seen = {}
    with caplog.at_level(logging.WARNING):
        for where, ckpt in (("run folder", timm_run), ("copy", copy)):
            prediction = umsi.load(ckpt).predict(image)
            seen[where] = (
                prediction.heatmap.tobytes(),
                prediction.probabilities.tobytes(),
                _export_metadata(ckpt, tmp_path / f"{where.replace(' ', '_')}.onnx", monkeypatch),
                describe_model(ckpt, "32")["input_size"],
            )
    assert seen["copy"] == seen["run folder"]
    assert not [r for r in caplog.records if "model card" in r.getMessage()]  # read from the file: no fallback
    exported = json.loads(seen["copy"][2])
    assert exported["input_size"] == [64, 80] and seen["copy"][3] == [64, 80]
    assert exported["preprocessing"] == get_preprocessing("timm").to_dict()
    assert exported["source"]["kind"] == "exported" and exported["source"]["file"] == timm_run.name
    assert exported["source"]["from"] == {"kind": "training", "run": str(timm_run.parents[1]), "stage": "pretrain"}
    # the old fallback (240×320, official) predicts something else: the card is what makes them equal
    loaded = load_model(copy)
    official = loaded.card.replace(input_size=DEFAULT_INPUT_SIZE, preprocessing="official")
    other = Predictor.from_card(loaded.model, official).predict(image)
    assert np.abs(other.heatmap - np.frombuffer(seen["copy"][0], np.float32).reshape(200, 300)).max() > 1e-3


def test_a_training_checkpoint_card_names_a_registered_architecture(timm_run: Path) -> None:
    state = read_checkpoint(timm_run)
    card = ModelCard.from_dict(state[CARD_KEY])
    assert card.architecture == "umsi_tiny" and card.architecture in list_models()
    assert "_target_" not in card.model_args and "." not in json.dumps(card.architecture)
    assert (card.input_size, card.preprocessing.name, card.output_scale) == ((64, 80), "timm", 2.0)
    assert card.model_args["pretrained"] is False and card.model_args["pretrained_file"] is None
    assert len(card.class_names) == card.model_args["num_classes"]
    assert card.source == {"kind": "training", "run": str(timm_run.parents[1]), "stage": "pretrain"}
    assert card.name == "10-00-00/pretrain" and card.umsi_version
    assert state["hyper_parameters"]["model"]["architecture"] == "umsi_tiny"
    assert ModelCard.from_json(card.to_json()) == card


def _pre_card_checkpoint(run_dir: Path) -> Path:
    """A checkpoint as the code before the card wrote it: ``tests/fixtures/pre_card_checkpoint.json`` is every
    non-tensor value of a 1-epoch pretrain checkpoint written by that code (``data.input_size=[48,56]``,
    ``data.preprocessing=timm``; hyper-parameters with ``_target_: umsi.models.UMSI``, Lightning's keys, no card)
    and ``pre_card_config.yaml`` its run's ``config.yaml``; the weights are a fresh network of those
    hyper-parameters."""
    skeleton = json.loads((FIXTURES / "pre_card_checkpoint.json").read_text())
    model_cfg = skeleton["hyper_parameters"]["model"]
    assert model_cfg["_target_"] == "umsi.models.UMSI" and CARD_KEY not in skeleton
    kwargs = {k: v for k, v in model_cfg.items() if k != "_target_"}
    torch.manual_seed(0)
    weights = create_model("umsi", **{**kwargs, "pretrained": False}).state_dict()
    ckpt = run_dir / "checkpoints" / "epoch000-step3.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({**skeleton, "state_dict": {f"model.{k}": v for k, v in weights.items()}}, ckpt)
    shutil.copy(FIXTURES / "pre_card_config.yaml", run_dir / "config.yaml")
    return ckpt


def test_a_checkpoint_written_before_the_card_loads_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ckpt = _pre_card_checkpoint(tmp_path / "run")
    with caplog.at_level(logging.WARNING):
        loaded = load_model(ckpt)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(tmp_path / "run" / "config.yaml") in warnings[0], warnings
    assert "no model card" in warnings[0]
    assert (loaded.input_size, loaded.preprocessing.name) == ((48, 56), "timm")
    assert loaded.card.architecture == "umsi" and loaded.name == f"{tmp_path.name}/run"
    assert (
        loaded.class_names
        == json.loads((FIXTURES / "pre_card_checkpoint.json").read_text())["hyper_parameters"]["class_names"]
    )
    # alone (no config.yaml next to it) the warning names the defaults it falls back to
    alone = tmp_path / "alone.ckpt"
    shutil.copy(ckpt, alone)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert load_model(alone).input_size == DEFAULT_INPUT_SIZE
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "the defaults (240×320, official)" in warnings[0], warnings


def test_loading_and_serving_import_no_training_package(tmp_path: Path) -> None:
    """``umsi.load(...)`` (the command of the issue), then what ``umsi-serve`` imports and runs before its workers
    start (describe the model for ``/health``), in one fresh interpreter."""
    path = save_model(tmp_path / "tiny.ckpt", create_model("umsi"), (32, 40))
    heavy = "{'pytorch_lightning', 'albumentations', 'torchmetrics'}"
    script = (
        f"import sys, umsi; umsi.load(sys.argv[1]); print(sorted({heavy} & set(sys.modules))); "
        "from pathlib import Path; import umsi.serving.api, umsi.serving.server as server; "
        f"server.describe_model(Path(sys.argv[1]), '32'); print(sorted({heavy} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-2:] == ["[]", "[]"]


def test_the_registry_builds_every_model_config() -> None:
    for name in ("umsi", "umsi_official", "umsi_xception41", "umsi_xception65_os16"):
        assert name in list_models() and default_card(name).input_size == DEFAULT_INPUT_SIZE
    torch.manual_seed(0)
    official, released = create_model("umsi_official", num_classes=3), UMSI.official(num_classes=3)
    released.load_state_dict(official.state_dict())
    image = torch.randn(1, 3, 33, 41) * 50
    with torch.no_grad():
        torch.testing.assert_close(official.eval()(image).saliency, released.eval()(image).saliency, rtol=0, atol=0)
        assert not torch.equal(create_model("umsi", num_classes=3).eval()(image).saliency, released(image).saliency)
    assert model_config({"_target_": "umsi.models.UMSI", "num_classes": 4}) == ("umsi", {"num_classes": 4})
    with pytest.raises(ConfigError, match=r"model\.architecture='nope' is not a registered model; choose one of"):
        create_model("nope")
    with pytest.raises(ConfigError, match=r"_target_='os\.system' names no registered architecture"):
        model_config({"_target_": "os.system"})
    for option in ("umsi", "umsi_official", "xception41", "xception65_os16"):
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name="train", overrides=[f"model={option}", "paths.root_dir=/tmp/x"])
        name, _ = model_config(cfg.model)
        assert name in list_models() and "_target_" not in cfg.model


def test_preprocessing_schemes_are_exact_and_extensible() -> None:
    image = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3) * 20
    inception = register_preprocessing(
        Preprocessing("test_imagenet", "RGB", 255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    )
    x = normalize_image(image, "test_imagenet")
    expected = (image[..., ::-1].astype(np.float32) / 255.0 - np.float32(inception.mean)) / np.float32(inception.std)
    np.testing.assert_array_equal(x.numpy(), expected.transpose(2, 0, 1))
    np.testing.assert_array_equal(normalize_image(image, "official").numpy()[0], image[..., 0] - np.float32(103.939))
    with pytest.raises(ConfigError, match=r"data\.preprocessing='nope': choose one of \[.*'official'.*'timm'"):
        get_preprocessing("nope")
    with pytest.raises(ConfigError, match="already registered"):
        register_preprocessing(Preprocessing("timm", "RGB", 1.0, (0, 0, 0), (1, 1, 1)))


def test_a_bad_card_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = save_model(tmp_path / "m.ckpt", create_model("umsi"), (32, 40))
    state = read_checkpoint(path)
    state[CARD_KEY]["architecture"] = "umsi.models.UMSI"
    with pytest.raises(CheckpointError, match=r"m\.ckpt: its model card does not read .*not an import path"):
        read_card(state, path)
    state[CARD_KEY]["format"] = 99
    with pytest.raises(CheckpointError, match="newer than this umsi reads"):
        read_card(state, path)
