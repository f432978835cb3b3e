"""Crash-safe writing: the target appears complete or not at all, with normal file permissions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from umsi.utils.io import atomic_write, write_json


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    write_json(target, {"run": 1})

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_text().strip().endswith("}") and '"run": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary file left behind


def test_written_file_gets_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = write_json(tmp_path / "a.json", {})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
