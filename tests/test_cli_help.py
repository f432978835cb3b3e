"""``--help`` and config errors of the command-line tools answer before torch is imported, and ``--help`` does not
go through Hydra's listing of the config groups (which re-reads the config repository once per group)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra._internal.hydra import Hydra

from umsi.cli import predict
from umsi.cli.config_check import config_groups
from umsi.paths import CONFIG_DIR

RUN_WITHOUT_TORCH = """
import sys
sys.argv = {argv!r}
from umsi.cli.predict import main
try:
    main()
except SystemExit as exit:
    code = exit.code
else:
    code = 0
heavy = sorted(m for m in ("torch", "cv2", "PIL", "timm", "pytorch_lightning") if m in sys.modules)
assert not heavy, f"imported {{heavy}}"
sys.exit(code)
"""


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    code = RUN_WITHOUT_TORCH.format(argv=argv)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def test_predict_help_and_config_error_do_not_import_torch(tmp_path: Path) -> None:
    result = _run(["umsi-predict", "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "== Config ==" in result.stdout and "input: ???" in result.stdout
    result = _run(["umsi-predict", "input=x.jpg", "batch_sizee=3"], tmp_path)
    assert result.returncode == 2, result.stderr
    expected = "umsi-predict: config error: unknown key 'batch_sizee' — did you mean 'batch_size'?"
    assert result.stderr.startswith(expected)
    assert not list(tmp_path.iterdir())  # refused before Hydra made a run folder


def test_help_page_without_hydra_group_listing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def no_listing(*args: object, **kwargs: object) -> None:
        raise AssertionError("Hydra's app_help (one repository re-read per config group) was called")

    monkeypatch.setattr(Hydra, "app_help", no_listing)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["umsi-predict", "device=cuda", "--help"])
    predict.main()
    page = capsys.readouterr().out
    assert page.startswith("umsi-predict: heatmaps, overlays and class probabilities")
    assert "device: cuda\n" in page  # the config is composed with the command line
    presets = "convnext_tiny, deit_small, efficientnet_b3, resnet50, tiny, umsi, umsi_official, xception41, "
    presets += "xception65_os16"
    assert f"model: {presets}\n" in page
    assert "Use --hydra-help to view Hydra specific help" in page
    assert not list(tmp_path.iterdir())


def test_config_groups_are_the_folders_hydra_lists() -> None:
    groups = config_groups(CONFIG_DIR)
    assert groups["trainer"] == ["cpu", "ddp", "ddp_spawn", "default", "gpu"]
    assert groups["data"][0] == "_common"  # Hydra lists it too
    assert not any(group.startswith("hydra") for group in groups)
