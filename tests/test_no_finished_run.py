"""Every tool that needs a finished ``umsi-train`` run says so in one line and exits 2 when there is none (no
traceback): what ``make eval`` or ``umsi-predict`` on a fresh clone print before ``make train``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from umsi.cli import eval as eval_cli
from umsi.cli import export, predict, serve


@pytest.mark.parametrize(
    ("tool", "main", "args", "key"),
    [
        ("umsi-eval", eval_cli.main, [], "checkpoints=[path/to/model.ckpt]"),
        ("umsi-predict", predict.main, ["input=poster.png"], "ckpt=path/to/model.ckpt"),
        ("umsi-export", export.main, [], "ckpt=path/to/model.ckpt"),
        ("umsi-serve", serve.main, [], "ckpt=path/to/model.ckpt"),
    ],
)
def test_tool_without_a_finished_run_prints_one_line_and_exits_2(
    tool: str,
    main: Callable[[], None],
    args: list[str],
    key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    Image.new("RGB", (20, 16)).save(tmp_path / "poster.png")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [tool, *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{tool}: missing path: "), err
    assert f"no finished umsi-train run with a checkpoint under {tmp_path / 'outputs'}" in lines[0], err
    assert "run `make train` first" in lines[0] and key in lines[0], err
    assert "Traceback" not in err
