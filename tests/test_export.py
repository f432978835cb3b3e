"""umsi-export: ONNX / TorchScript parity (default and TF-exact networks), dynamic batch, metadata, the CLI."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import nn

from umsi.checkpoints.exported import ExportedNetwork, export_model, load_exported, parity_check
from umsi.errors import ConfigError, ExportError, MissingPathError, UserError
from umsi.inference.export import export_from_config
from umsi.models import UMSI
from umsi.paths import CONFIG_DIR

CLASSES = ["a", "b", "c", "d", "e", "f"]
# (constructor, input size): the default network, and the released one's TF "same" padding and TF1 bilinear
# resize at an odd size where TF pads asymmetrically and the resize is not an exact ×2.
NETWORKS = {"default": (UMSI, (32, 40)), "official": (UMSI.official, (37, 45))}


def _calibrate(model: UMSI, size: tuple[int, int]) -> UMSI:
    """Make the random network's outputs O(1): He-initialise the decoder (bias 0, map bias 0.5) and set the
    BatchNorm running statistics from random inputs. As built, the map is O(0.1) or all zero (the final ReLU),
    which would make the saliency parity trivial."""
    for conv in model.decoder.modules():
        if isinstance(conv, nn.Conv2d):
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.constant_(conv.bias, 0.5 if conv is model.decoder.head else 0.0)
    for layer in model.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, *size) * 50)
    return model.eval()


@pytest.fixture(scope="module")
def networks() -> dict[str, UMSI]:
    torch.manual_seed(0)
    return {key: _calibrate(make(), size) for key, (make, size) in NETWORKS.items()}


def _metadata(size: tuple[int, int]) -> dict:
    return {
        "name": "tiny",
        "class_names": CLASSES,
        "input_size": list(size),
        "preprocessing": "official",
        "output_scale": 2.0,
        "source": "nowhere.ckpt",
    }


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("key", list(NETWORKS))
def test_export_parity_dynamic_batch_and_metadata(
    networks: dict[str, UMSI], key: str, fmt: str, tmp_path: Path
) -> None:
    model, size = networks[key], NETWORKS[key][1]
    path = export_model(model, tmp_path / f"m.{'onnx' if fmt == 'onnx' else 'ts'}", fmt, size, _metadata(size))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    exported = load_exported(path)
    assert exported.format == fmt
    assert exported.metadata == {**_metadata(size), "input_size": size}
    # traced at batch 2: batch 1 and 3 show the batch axis is dynamic
    diffs = parity_check(model, exported, size, batch_sizes=(1, 3))
    out = exported(torch.randn(3, 3, *size) * 50)
    assert out.saliency.shape == (3, 1, 2 * size[0], 2 * size[1]) and out.logits.shape == (3, 6)
    saliency_scale, logits_scale = out.saliency.max().item(), out.logits.abs().max().item()
    print(f"{key} {fmt}: max |Δ| {diffs}, output scale saliency {saliency_scale:.3g}, logits {logits_scale:.3g}")
    assert (out.saliency > 0).float().mean() > 0.1 and logits_scale > 0.01  # a non-degenerate map and logits
    # 1e-4 absolutely and relative to the output scale (the stricter, should an output come out small)
    assert diffs["saliency"] < 1e-4 * min(1.0, saliency_scale), diffs
    assert diffs["logits"] < 1e-4 * min(1.0, logits_scale), diffs
    assert not model.training  # the export left the model in eval mode, as it was
    with pytest.raises(ValueError, match="exported for"):
        exported(torch.zeros(1, 3, size[0] + 1, size[1]))


def test_suffixes_and_failed_export(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"m\.pt.*\.onnx"):
        load_exported(tmp_path / "m.pt")
    with pytest.raises(ValueError, match="suffix does not match"):
        export_model(nn.Identity(), tmp_path / "m.onnx", "torchscript", (8, 8), {})

    class Broken(nn.Module):
        def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            raise RuntimeError("cannot trace me")

    with pytest.raises(RuntimeError, match="cannot trace me"):
        export_model(Broken(), tmp_path / "m.ts", "torchscript", (8, 8), {})
    assert list(tmp_path.iterdir()) == []  # a failed export leaves nothing


def test_parity_check_reports_nan() -> None:
    class Tiny(nn.Module):
        def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return image.mean(1, keepdim=True), image.mean((2, 3))

    class NanExport(ExportedNetwork):
        def _run(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            saliency, logits = Tiny()(image)
            return saliency, torch.where(logits > 0, torch.nan, logits)  # NaN in the first batch only

    diffs = parity_check(Tiny(), NanExport(Path("x.onnx"), {}, "cpu"), (4, 5), batch_sizes=(8, 8))
    assert diffs["saliency"] == 0.0 and diffs["logits"] != diffs["logits"]  # the NaN is not hidden


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_onnx_end_to_end(trained: Path, tmp_path: Path) -> None:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "umsi.cli.export", "ckpt=latest", f"outputs_dir={trained}", "format=onnx"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    print(result.stdout)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "parity (random input, batch 2 and 3): max |Δ| saliency" in result.stdout, result.stdout
    written = list(trained.rglob("*.onnx"))
    assert len(written) == 1 and written[0].with_suffix(".ckpt").is_file(), written  # next to the checkpoint
    assert f"wrote {written[0]}" in result.stdout, result.stdout
    exported = load_exported(written[0])
    meta, card = exported.metadata, exported.card
    assert meta["input_size"] == (32, 40) and meta["class_names"][-1] == "natural_images"
    assert card.architecture == "umsi_tiny" and card.preprocessing.name == "imagenet"  # the checkpoint's card
    assert card.source["kind"] == "exported" and card.source["file"] == written[0].with_suffix(".ckpt").name
    assert [p.name for p in written[0].parent.glob(".*")] == []  # no temp files
    assert {p.name for p in tmp_path.iterdir()} == {"outputs"}  # Hydra writes only under outputs/

    before = (_digest(written[0]), written[0].stat().st_mtime_ns)
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    print(again.stderr)
    assert again.returncode != 0
    assert "already exists" in again.stderr and "overwrite=true" in again.stderr and "Traceback" not in again.stderr
    assert (_digest(written[0]), written[0].stat().st_mtime_ns) == before


def _export_cfg(outputs: Path, *extra: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="export", overrides=[f"paths.root_dir={outputs.parent}", *extra])


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (["ckpt=/no/such/model.ckpt"], MissingPathError, r"^ckpt=/no/such/model\.ckpt: no such file"),
        (["format=tflite"], ConfigError, r"^format=tflite is not supported"),
        (
            ["ckpt=latest"],
            MissingPathError,
            r"^ckpt=latest: no finished umsi-train run with a checkpoint under .*\(outputs_dir\)",
        ),
        (
            ["ckpt={ckpt}", "format=torchscript", "output=x.onnx"],
            ConfigError,
            r"^output=x\.onnx: a torchscript file must end",
        ),
        (["ckpt={ckpt}", "input_size=[0,5]"], ConfigError, r"^input_size=\[0, 5\]: input_size must be"),
        (["ckpt={ckpt}"], UserError, r"^ckpt=.*model\.ckpt: cannot load it"),
    ],
)
def test_cli_errors_name_the_key(
    tmp_path: Path, overrides: list[str], error: type[BaseException], message: str
) -> None:
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"")
    cfg = _export_cfg(tmp_path / "outputs", *(o.format(ckpt=ckpt) for o in overrides))
    with pytest.raises(error, match=message):
        export_from_config(cfg)


def test_cli_keeps_nothing_when_parity_fails(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the real export is covered above; here a stand-in export whose parity is off by 1
    from umsi.inference import export as export_module

    def fake_export(model: nn.Module, path: Path, fmt: str, *args: object, **kwargs: object) -> Path:
        Path(path).write_bytes(b"not a model")
        return Path(path)

    monkeypatch.setattr(export_module, "export_model", fake_export)
    monkeypatch.setattr(export_module, "load_exported", lambda path, device: object())
    monkeypatch.setattr(export_module, "parity_check", lambda *a, **k: {"saliency": 1.0, "logits": 0.0})
    output = tmp_path / "out" / "model.onnx"
    cfg = _export_cfg(trained, "ckpt=latest", f"outputs_dir={trained}", f"output={output}")
    with pytest.raises(ExportError, match=r"parity check failed \(tolerance=0\.0001\)"):
        export_from_config(cfg)
    assert "max |Δ| saliency 1.0e+00" in capsys.readouterr().out
    assert list(output.parent.iterdir()) == []  # neither the output nor the temporary file
