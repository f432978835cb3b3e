"""``make test``'s install step (scripts/test_system_deps.sh): quiet when the system packages are there, and where it
cannot install them (not root, no apt-get) it stops naming the packages, the command and the test that needs them.
The files are looked up under an empty folder (``TEST_DEPS_ROOT``) and ``id`` is faked on ``PATH``, so nothing is
uninstalled or installed here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "test_system_deps.sh"
BROWSER_TEST = "tests/test_serve.py::test_the_page_shows_overlay_heatmap_and_classes"


def _run(tmp_path: Path, uid: int, root: Path | None) -> subprocess.CompletedProcess:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (fake_bin / "id").chmod(0o755)
    env = {"PATH": str(fake_bin), "TEST_DEPS_ROOT": str(root) if root else ""}  # no apt-get on this PATH
    return subprocess.run(["/bin/bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize(("uid", "why"), [(1000, "not running as root"), (0, "apt-get not found")])
def test_missing_packages_stop_make_test_with_the_command(tmp_path: Path, uid: int, why: str) -> None:
    empty = tmp_path / "root"
    empty.mkdir()
    result = _run(tmp_path, uid, empty)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"make test: the system packages chromium chromium-driver are missing and cannot be installed here ({why})."
    )
    assert lines[1] == f"  needed by: {BROWSER_TEST}"
    install = "apt-get update && apt-get install -y chromium chromium-driver"
    assert lines[2] == f"  install them (Debian/Ubuntu): sudo sh -c '{install}'"


def test_only_the_missing_package_is_named(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    chromium = root / "usr" / "bin" / "chromium"
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    result = _run(tmp_path, 1000, root)
    assert result.returncode == 1
    assert "the system packages chromium-driver are missing" in result.stderr
    assert "apt-get install -y chromium-driver'" in result.stderr


def test_nothing_to_do_when_the_files_are_there(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for name in ("chromium", "chromedriver"):
        (root / "usr" / "bin").mkdir(parents=True, exist_ok=True)
        (root / "usr" / "bin" / name).write_text("#!/bin/sh\n")
        (root / "usr" / "bin" / name).chmod(0o755)
    result = _run(tmp_path, 1000, root)  # not root, no apt-get: nothing is needed, so nothing is refused
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_the_files_checked_are_the_ones_the_browser_test_runs() -> None:
    serve_tests = (REPO / "tests" / "test_serve.py").read_text()
    assert 'CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"' in serve_tests
    assert f"def {BROWSER_TEST.split('::')[1]}(" in serve_tests
    script = SCRIPT.read_text()
    assert f'"/usr/bin/chromium|chromium|{BROWSER_TEST}"' in script
    assert f'"/usr/bin/chromedriver|chromium-driver|{BROWSER_TEST}"' in script
    assert "test-deps:\n\t@scripts/test_system_deps.sh" in (REPO / "Makefile").read_text()
    assert "test: test-deps install" in (REPO / "Makefile").read_text()
