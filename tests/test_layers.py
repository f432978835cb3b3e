"""The import rule of docs/architecture.md, checked with import-linter (``lint-imports``, configured in
pyproject.toml): a layer imports only the layers below it, and no package has an import cycle among its modules.
The check runs on the real package, and on copies with one planted violation each to show that it can fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the project's contracts on the ``umsi`` package found in ``package_parent``."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    cmd = [sys.executable, "-c", LINT, str(ROOT / "pyproject.toml"), "--no-cache"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=package_parent, timeout=120)


def test_the_package_keeps_its_layers_and_has_no_import_cycles() -> None:
    result = lint_imports(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "broken", "named"),
    [
        (  # a model importing the training layer
            "models/heads.py",
            "from umsi.training import module as _upward  # noqa: F401",
            "Layers: each layer imports only the layers below it BROKEN",
            "umsi.models.heads -> umsi.training.module",
        ),
        (  # the data readers importing the datasets, which import the readers
            "data/readers.py",
            "from umsi.data import datasets as _circle  # noqa: F401",
            "No import cycles between the modules or sub-packages of any package BROKEN",
            "in umsi.data.\nIt could be made acyclic by removing 1 dependency:\n\n- .readers -> .datasets",
        ),
    ],
)
def test_an_upward_import_or_a_cycle_breaks_the_check(
    tmp_path: Path, module: str, planted: str, broken: str, named: str
) -> None:
    copy = tmp_path / "umsi"
    shutil.copytree(ROOT / "src" / "umsi", copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{planted}\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert broken in result.stdout
    assert named in result.stdout
