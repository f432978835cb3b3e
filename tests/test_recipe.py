"""The paper's recipe on real data: ImageNet encoder weights through timm's own hub mechanism (with a clear
failure before any run folder when they cannot be had), experiment=reproduce vs experiment=official, the dropout
sites."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import timm
import torch
import yaml
from huggingface_hub import constants
from omegaconf import OmegaConf
from safetensors.torch import save_file

from conftest import tiny_overrides
from umsi.checkpoints.loading import load_model
from umsi.models import PretrainedWeightsError, build_encoder, dropout_sites, fetch_pretrained_weights
from umsi.models.encoder import pretrained_cache_dir
from umsi.models.registry import build_model

BIN = Path(sys.executable).parent
ENV = {**os.environ, "WANDB_MODE": "disabled"}
BN_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture(scope="module")
def legacy_state() -> dict[str, torch.Tensor]:
    """A randomly initialised timm ``legacy_xception`` state dict (not ImageNet weights), built once."""
    torch.manual_seed(3)
    return timm.create_model("legacy_xception", pretrained=False).state_dict()


@pytest.fixture
def offline_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Empty temporary caches, as ``HF_HOME=<tmp>/hf TORCH_HOME=<tmp>/torch HF_HUB_OFFLINE=1`` give a new process
    (huggingface_hub reads HF_HOME and HF_HUB_OFFLINE when it is imported, so this process sets its constants)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    yield tmp_path


def _torch_cache(name: str, state: dict[str, torch.Tensor]) -> Path:
    """Put ``state`` where timm looks for a URL-hosted pretrained file (torch's hub cache, TORCH_HOME)."""
    url = timm.models.get_pretrained_cfg(name).url
    path = pretrained_cache_dir(name) / Path(url).name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def _hf_cache(hub_dir: Path, repo_id: str, state: dict[str, torch.Tensor]) -> Path:
    """Put ``state`` into a Hugging Face hub cache in its layout: models--<org>--<name>/refs/main names the
    snapshot, snapshots/<commit>/model.safetensors is the file."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hub_dir / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    path = repo / "snapshots" / commit / "model.safetensors"
    path.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def _pretrain_offline(
    tmp: Path, synthetic_root: Path, monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[Path, dict[str, Any]]:
    """``umsi-train <args> model.pretrained=true stage=pretrain optimizer.lr=0.0`` (lr 0 keeps the encoder's
    starting weights) in-process on the tiny tree → (run folder, its last checkpoint)."""
    from umsi.cli.train import main

    run_dir = tmp / "run"
    # the network of ``args`` (the default one unless they name another), not the tiny tests' model=tiny
    overrides = [o for o in tiny_overrides(synthetic_root, run_dir) if not o.startswith(("paths.root_dir", "model="))]
    argv = ["umsi-train", *args, "model.pretrained=true", "stage=pretrain", "optimizer.lr=0.0"]
    monkeypatch.chdir(tmp)
    monkeypatch.setattr(sys, "argv", [*argv, *overrides, f"hydra.run.dir={run_dir}"])
    main()
    return run_dir, torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def _encoder_compared(checkpoint: dict[str, Any], expected: dict[str, torch.Tensor]) -> int:
    """Assert the checkpoint's encoder weights equal ``expected`` (timm names; BatchNorm statistics move in training,
    so they are not compared); returns how many tensors were compared."""
    weights = checkpoint["state_dict"]
    encoder = {k.removeprefix("model.encoder.body."): v for k, v in weights.items() if k.startswith("model.encoder.")}
    compared = [name for name in encoder if not name.endswith(BN_STATISTICS)]
    for name in compared:
        assert torch.equal(encoder[name], expected[name]), name
    return len(compared)


# ---------------------------------------------------------------------------------------------------------------
# model.pretrained


def _offline_pretrained_run(synthetic_root: Path, tmp_path: Path) -> tuple[list[str], dict[str, str], Path]:
    """(command, environment, run folder) of ``umsi-train experiment=reproduce model.pretrained=true`` offline, with
    timm's caches under ``tmp_path`` (``hf``, ``torch``)."""
    env = {**ENV, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch")}
    run_dir = tmp_path / "run"
    cmd = [
        str(BIN / "umsi-train"),
        "experiment=reproduce",
        "model.pretrained=true",
        f"paths.datasets_dir={synthetic_root}",
        "data.salicon_per_epoch=12",  # all the fixture has: no warning before the error line
        f"hydra.run.dir={run_dir}",
    ]
    return cmd, env, run_dir


def test_offline_with_an_empty_cache_stops_before_a_run_folder(synthetic_root: Path, tmp_path: Path) -> None:
    cmd, env, run_dir = _offline_pretrained_run(synthetic_root, tmp_path)
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert result.returncode == 2, result.stderr[-2000:]
    line = _one_line(result.stderr)
    cache = tmp_path / "torch" / "hub" / "checkpoints"  # legacy_xception.tf_in1k is a URL file in timm 1.0
    assert line.startswith(
        f"umsi-train: encoder weights: model.pretrained=true: the ImageNet weights legacy_xception.tf_in1k are not in "
        f"timm's cache ({cache}) and cannot be downloaded (HF_HUB_OFFLINE=1)."
    )
    assert "model.pretrained_file=/path/to/weights.pth" in line and "model.pretrained=false" in line
    assert not run_dir.exists() and not (tmp_path / "outputs").exists()


def test_a_damaged_cached_weights_file_is_refused_before_a_run_folder(
    synthetic_root: Path, tmp_path: Path, legacy_state: dict[str, torch.Tensor]
) -> None:
    """An empty and a partial cached encoder weights file (an interrupted copy of the cache to an offline machine):
    the pre-run check opens it as the loader does and refuses it with one line naming the file and saying to
    delete it, exit code 2 and no run folder (it used to pass, make the folder and fail in training, exit 1)."""
    cmd, env, run_dir = _offline_pretrained_run(synthetic_root, tmp_path)
    url = timm.models.get_pretrained_cfg("legacy_xception").url
    cached = tmp_path / "torch" / "hub" / "checkpoints" / Path(url).name
    cached.parent.mkdir(parents=True)
    whole = tmp_path / "whole.pth"
    torch.save(legacy_state, whole)
    for kind, data in {"empty": b"", "partial": whole.read_bytes()[: whole.stat().st_size // 3]}.items():
        cached.write_bytes(data)
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
        assert result.returncode == 2, (kind, result.stderr[-2000:])
        line = _one_line(result.stderr)
        why = "an empty file" if kind == "empty" else f"{len(data):,} bytes that do not load: "
        assert line.startswith(
            "umsi-train: encoder weights: model.pretrained=true: the cached ImageNet weights of "
            f"legacy_xception.tf_in1k at {cached} are damaged ({why}"
        ), (kind, line)
        assert "Delete that file and run again with network access" in line, (kind, line)
        assert not run_dir.exists() and not (tmp_path / "outputs").exists(), kind


@pytest.mark.parametrize(
    ("encoder", "weights"), [("xception41", "xception41.tf_in1k"), ("resnet50", "resnet50.a1_in1k")]
)
def test_an_hf_hosted_encoder_names_the_hugging_face_cache(offline_caches: Path, encoder: str, weights: str) -> None:
    with pytest.raises(PretrainedWeightsError) as err:
        build_encoder(encoder, pretrained=True)
    assert str(err.value).startswith(
        f"model.pretrained=true: the ImageNet weights {weights} are not in timm's cache "
        f"({offline_caches / 'hf' / 'hub'}) and cannot be downloaded (HF_HUB_OFFLINE=1)."
    )


def test_the_hugging_face_cache_layout_loads_offline(offline_caches: Path) -> None:
    torch.manual_seed(4)
    state = timm.create_model("xception41", pretrained=False).state_dict()
    cached = _hf_cache(offline_caches / "hf" / "hub", "timm/xception41.tf_in1k", state)
    assert fetch_pretrained_weights("xception41") == cached
    encoder = build_encoder("xception41", output_stride=16, pretrained=True)
    loaded = encoder.body.state_dict()  # features_only flattens the stem: stem.0 -> stem_0
    assert len(loaded) == len(state) - 2  # all but the classifier head
    for name, value in loaded.items():
        assert torch.equal(value, state[re.sub(r"^([a-z]+)_(\d+)\.", r"\1.\2.", name)]), name


def test_the_prepared_cache_loads_through_umsi_train(
    offline_caches: Path,
    synthetic_root: Path,
    legacy_state: dict[str, torch.Tensor],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``umsi-train experiment=reproduce model.pretrained=true`` offline with the weights cached: the encoder starts
    from exactly the cached weights (lr 0 keeps them; BatchNorm statistics still move, so they are not compared),
    and the checkpoint later loads for evaluation without the cache."""
    cached = _torch_cache("legacy_xception", legacy_state)
    run_dir, saved = _pretrain_offline(offline_caches, synthetic_root, monkeypatch, "experiment=reproduce")
    assert _encoder_compared(saved, legacy_state) > 100
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    cached.unlink()  # the weights now come from the checkpoint: no ImageNet file is read again
    assert load_model(checkpoint).model.encoder.body.conv1.weight.shape == legacy_state["conv1.weight"].shape


def test_a_local_file_wins_over_the_hub(offline_caches: Path, legacy_state: dict[str, torch.Tensor]) -> None:
    path = offline_caches / "mine.pth"
    torch.save(legacy_state, path)
    encoder = build_encoder(pretrained=True, pretrained_file=str(path))  # empty caches, offline: the file is used
    assert torch.equal(encoder.body.conv1.weight, legacy_state["conv1.weight"])


def test_a_wrong_cached_file_names_the_keys(offline_caches: Path) -> None:
    _torch_cache("legacy_xception", {"conv1.weight": torch.zeros(32, 3, 3, 3)})
    with pytest.raises(PretrainedWeightsError, match=r"\(model.pretrained=true\): Missing keys \(.*bn1.weight"):
        build_encoder(pretrained=True)


# ---------------------------------------------------------------------------------------------------------------
# experiment=reproduce / experiment=official


def _job_config(*overrides: str) -> dict:
    result = subprocess.run(
        [str(BIN / "umsi-train"), "--cfg", "job", *overrides], capture_output=True, text=True, env=ENV, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _rates(dropout: dict) -> list[float]:
    return [dropout["global_conv"], dropout["global_dense"], dropout["projection"], *dropout["decoder"]]


def test_cfg_job_of_both_experiments() -> None:
    reproduce = _job_config("experiment=reproduce")
    assert reproduce["model"]["pretrained"] is True and reproduce["model"]["pretrained_file"] is None
    assert [r for r in _rates(reproduce["model"]["dropout"]) if r] == [0.3, 0.3]
    assert (reproduce["model"]["tf_same_padding"], reproduce["loss"]["mse"], reproduce["loss"]["nss"]) == (False, 0, 0)
    official = _job_config("experiment=official")
    assert official["model"]["pretrained"] is True
    assert _rates(official["model"]["dropout"]) == [0.3] * 6
    assert {k: official["loss"][k] for k in ("kl", "cc", "mse", "nss", "cls")} == {
        "kl": 10.0,
        "cc": -3.0,
        "mse": 0.1,
        "nss": -5.0,
        "cls": 5.0,
    }
    assert (official["model"]["tf_same_padding"], official["model"]["upsampling"]) == (True, "tf1_legacy")
    assert official["stage"]["finetune_overrides"] == ["trainer.max_epochs=30"]
    for cfg in (reproduce, official):
        assert cfg["data"]["batch_size"] == 4 and list(cfg["data"]["input_size"]) == [240, 320]
    assert _job_config()["model"]["pretrained"] is False  # make train (experiment=demo) downloads nothing


def test_the_dropout_sites_of_the_built_networks(hydra_conf) -> None:
    for experiment, expected in (("reproduce", [0.0, 0.3, 0.3, 0.0, 0.0, 0.0]), ("official", [0.3] * 6)):
        cfg = hydra_conf([f"experiment={experiment}", "model.pretrained=false", "paths.root_dir=/tmp/x"])
        model = build_model(OmegaConf.to_container(cfg.model, resolve=True))
        assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("dropout", "message"),
    [
        ({"global_conv": 0.3}, r"missing sites \['global_dense', 'projection', 'decoder'\]"),
        (
            {"global_conv": 0, "global_dense": 0, "projection": 0, "decoder": 0, "aspp": 0.1},
            r"unknown sites \['aspp'\]",
        ),
        ({"global_conv": 1.0, "global_dense": 0, "projection": 0, "decoder": 0}, r"model.dropout.global_conv=1.0"),
        ({"global_conv": 0, "global_dense": 0, "projection": 0, "decoder": [0.1, 2]}, r"model.dropout.decoder\[1\]=2"),
    ],
)
def test_bad_dropout_sites_name_the_key(dropout: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dropout_sites(dropout, 3)


def test_one_rate_is_every_site() -> None:
    assert dropout_sites(0.3, 2) == {"global_conv": 0.3, "global_dense": 0.3, "projection": 0.3, "decoder": [0.3] * 2}


def test_a_non_xception_preset_starts_from_its_cached_weights_and_its_own_normalisation(
    offline_caches: Path, synthetic_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``umsi-train model=efficientnet_b3 model.pretrained=true`` offline with timm's weights in the Hugging Face
    cache: the encoder starts from exactly those weights, and the run records the encoder's own normalisation
    (ImageNet mean/std from its pretrained_cfg), not the released Xception's BGR means."""
    torch.manual_seed(5)
    state = timm.create_model("efficientnet_b3", pretrained=False).state_dict()
    _hf_cache(offline_caches / "hf" / "hub", "timm/efficientnet_b3.ra2_in1k", state)
    run_dir, saved = _pretrain_offline(offline_caches, synthetic_root, monkeypatch, "model=efficientnet_b3")
    assert _encoder_compared(saved, state) > 200
    card = saved["umsi_card"]
    # timm's pretrained_cfg of efficientnet_b3: RGB / 255, mean 0.485, 0.456, 0.406, std 0.229, 0.224, 0.225
    assert card["preprocessing"] == {
        "name": "imagenet",
        "channel_order": "RGB",
        "pixel_scale": 255.0,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["preprocessing"] == "imagenet"
    assert load_model(run_dir / "checkpoints" / "last.ckpt").preprocessing.name == "imagenet"


def test_a_local_file_initialises_a_non_xception_encoder(offline_caches: Path) -> None:
    torch.manual_seed(6)
    state = timm.create_model("resnet18", pretrained=False).state_dict()
    path = offline_caches / "resnet18.pth"
    torch.save(state, path)
    encoder = build_encoder("resnet18", output_stride=16, pretrained_file=str(path))
    loaded = encoder.body.state_dict()
    assert len(loaded) == len(state) - 2  # all but the classifier (fc.weight, fc.bias)
    assert all(torch.equal(value, state[name]) for name, value in loaded.items())
    torch.save({"conv1.weight": state["conv1.weight"]}, path)  # a wrong file names the missing keys
    with pytest.raises(PretrainedWeightsError, match=r"'resnet18' from .*resnet18.pth \(model.pretrained_file\)"):
        build_encoder("resnet18", pretrained_file=str(path))
