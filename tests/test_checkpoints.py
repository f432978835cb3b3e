"""Checkpoints survive SIGKILL, load weights-only with clear errors, and a killed run resumes to the same result."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import tiny_overrides
from umsi.checkpoints.files import read_checkpoint
from umsi.checkpoints.lightning_io import SafeCheckpointIO
from umsi.checkpoints.loading import load_model
from umsi.errors import CheckpointError, MissingPathError
from umsi.paths import CONFIG_DIR
from umsi.training.module import UMSILitModule, load_weights
from umsi.training.runner import run
from umsi.utils.io import PARTIAL_MARK, remove_partial_files

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1"}


# --------------------------------------------------------------------------------------- crash-safe saves

_SAVER = textwrap.dedent(
    """
    import os, sys, torch
    from umsi.checkpoints.lightning_io import SafeCheckpointIO
    # imported once; each line on stdin forks a saver that rewrites that path in a loop until it is killed
    for path in map(str.strip, sys.stdin):
        pid = os.fork()
        if pid == 0:
            print("saver", os.getpid(), flush=True)
            io = SafeCheckpointIO()
            for version in range(10**6):
                weights = torch.full((6_000_000,), float(version))  # 24 MB: most of the time is spent writing
                io.save_checkpoint({"version": version, "state_dict": {"w": weights}}, path)
                print(version, flush=True)
        os.waitpid(pid, 0)
        print("dead", flush=True)
    """
)


def test_sigkill_while_saving_never_leaves_a_broken_checkpoint(tmp_path: Path) -> None:
    """Kill a process that rewrites ``last.ckpt`` in a loop at several moments: the file always loads, holds
    one complete version, and the temporary files the kills leave are removed by ``remove_partial_files``. (The
    savers are forked from one process that imports torch and Lightning once.)"""
    path = tmp_path / "last.ckpt"
    versions = []
    parent = subprocess.Popen(
        [sys.executable, "-c", _SAVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env()
    )
    assert parent.stdin is not None and parent.stdout is not None
    saver = 0
    try:
        for delay in (0.05, 0.13, 0.29, 0.41):
            parent.stdin.write(f"{path}\n")
            parent.stdin.flush()
            started = parent.stdout.readline().split()
            assert started[:1] == ["saver"], started
            saver = int(started[1])
            first = parent.stdout.readline()  # one complete save exists from here on
            assert first.strip().isdigit(), first
            time.sleep(delay)
            os.kill(saver, signal.SIGKILL)
            while (line := parent.stdout.readline().strip()) != "dead":  # reaped: nothing writes any more
                assert line.isdigit(), line
            saver = 0
            state = read_checkpoint(path)
            version = state["version"]
            assert torch.equal(state["state_dict"]["w"], torch.full((6_000_000,), float(version)))
            versions.append(version)
    finally:
        if saver:  # a failed check left a saver running: stop it, or it writes forever
            with contextlib.suppress(ProcessLookupError):
                os.kill(saver, signal.SIGKILL)
        parent.stdin.close()
        parent.wait(timeout=60)
    assert parent.returncode == 0
    assert max(versions) > 0  # the kills did land between later saves, not only after the first one
    remove_partial_files(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_save_failure_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.ckpt"
    SafeCheckpointIO().save_checkpoint({"version": 1}, path)

    def broken_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04 half a file")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        SafeCheckpointIO().save_checkpoint({"version": 2}, path)
    assert read_checkpoint(path) == {"version": 1}
    assert not [p for p in tmp_path.iterdir() if PARTIAL_MARK in p.name]


# --------------------------------------------------------------------------------- broken and unsafe files


@pytest.fixture(scope="module")
def good_checkpoint(trained: Path) -> Path:
    return next(trained.glob("*/*/checkpoints/last.ckpt"))


def test_truncated_empty_and_foreign_files_are_reported_clearly(good_checkpoint: Path, tmp_path: Path) -> None:
    data = good_checkpoint.read_bytes()
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(
        CheckpointError, match=r"truncated\.ckpt is truncated or corrupt \([\d,]+ bytes; .*copy it again"
    ):
        read_checkpoint(truncated)
    with pytest.raises(CheckpointError, match=r"truncated\.ckpt is truncated or corrupt"):
        load_model(truncated)  # umsi-eval / umsi-predict / umsi-export path
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.ckpt is empty \(0 bytes\)"):
        read_checkpoint(empty)
    text = tmp_path / "notes.ckpt"
    text.write_text("these are not weights\n" * 10)
    with pytest.raises(CheckpointError, match=r"init_ckpt=.*notes\.ckpt is not a PyTorch checkpoint"):
        read_checkpoint(text, key="init_ckpt")
    with pytest.raises(MissingPathError, match=r"ckpt_path=.*nowhere\.ckpt: no such checkpoint file"):
        read_checkpoint(tmp_path / "nowhere.ckpt", key="ckpt_path")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096), zip_header=st.booleans())
def test_random_bytes_only_raise_checkpoint_error(tmp_path: Path, data: bytes, zip_header: bool) -> None:
    path = tmp_path / "fuzz.ckpt"
    path.write_bytes((b"PK\x03\x04" if zip_header else b"") + data)
    try:
        state = read_checkpoint(path)
    except CheckpointError as err:
        assert str(path) in str(err)
    else:
        assert isinstance(state, dict)


class _Payload:
    """Unpickling this would create ``marker``: loading must refuse before that."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_file_with_code_in_it_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": _Payload(marker)}}, evil)
    with pytest.raises(CheckpointError, match=r"holds a Python object \([\w.]+\).*never runs code"):
        read_checkpoint(evil)
    with pytest.raises(CheckpointError, match="never runs code"):
        load_model(evil)
    assert not marker.exists()
    torch.load(evil, weights_only=False)  # the payload is real: plain unpickling runs it
    assert marker.exists()


def test_resuming_from_a_truncated_checkpoint_names_it(tiny_cfg, good_checkpoint: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "last.ckpt"
    data = good_checkpoint.read_bytes()
    truncated.write_bytes(data[: len(data) - 4096])
    cfg, overrides = tiny_cfg("stage=pretrain", f"ckpt_path={truncated}")
    with pytest.raises(CheckpointError, match=r"ckpt_path=.*last\.ckpt is truncated or corrupt"):
        run(cfg, overrides)


def test_incompatible_checkpoint_names_the_mismatched_keys(good_checkpoint: Path) -> None:
    hparams = read_checkpoint(good_checkpoint)["hyper_parameters"]
    other = UMSILitModule(
        model={**hparams["model"], "num_classes": 7},
        loss=hparams["loss"],
        optimizer=hparams["optimizer"],
        class_names=[f"c{i}" for i in range(7)],
    )
    with pytest.raises(CheckpointError) as info:
        load_weights(other, good_checkpoint)
    message = str(info.value)
    assert "init_ckpt=" in message and "does not fit the model" in message
    assert "model.classifier.weight (6, " in message and "vs (7, " in message and "model.num_classes" in message


# ---------------------------------------------------------------------------------- kill and resume


def _summary_metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "summary.json").read_text())["model"]


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]


def test_killed_and_resumed_run_equals_an_uninterrupted_one(synthetic_root: Path, tmp_path: Path) -> None:
    """Deterministic CPU run of 4 epochs (2 data workers, sanity check on) vs. the same run SIGKILLed as soon as
    its first checkpoint exists and resumed with ``ckpt_path=last``: identical final weights and metrics."""
    common = ["stage=pretrain", "trainer.max_epochs=4", "trainer.deterministic=true", "data.num_workers=2"]
    common += ["trainer.num_sanity_val_steps=1"]
    straight = tmp_path / "straight"
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        overrides = [*tiny_overrides(synthetic_root, straight), *common]
        run(compose(config_name="train", overrides=overrides), overrides)

    killed = tmp_path / "killed"
    args = [*tiny_overrides(synthetic_root, killed), *common, f"hydra.run.dir={killed}"]
    last = killed / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen([sys.executable, "-m", "umsi.cli.train", *args], env=_env(), cwd=tmp_path)
    deadline = time.monotonic() + 300
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (killed / "summary.json").exists()
    assert read_checkpoint(last)["epoch"] < 3  # killed before the end: the resume has epochs left to train
    # resumed at once: the folder's lock died with the process (its forked data workers may still be winding down)

    resumed = subprocess.run(
        [sys.executable, "-m", "umsi.cli.train", *args, "ckpt_path=last"],
        env=_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _summary_metrics(killed) == _summary_metrics(straight)
    expected, actual = _final_weights(straight), _final_weights(killed)
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
