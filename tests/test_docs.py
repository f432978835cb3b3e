"""The documentation site builds with ``mkdocs build --strict``: a broken link, a missing page or anchor, or an API
reference entry whose module no longer imports fails here (what ``make docs`` runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# what the README and the old manual promised: every section of the former README has a page
PAGES = (
    "getting-started",
    "model",
    "official-weights",
    "prediction",
    "serving",
    "configuration",
    "sweeps",
    "evaluation",
    "real-data",
    "paper",
    "broken-data",
    "wandb",
    "development",
    "architecture",
    "performance",
    "benchmarks",
)


def test_the_site_builds_strict_with_its_api_reference(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "NO_MKDOCS_2_WARNING": "1",
        "DISABLE_MKDOCS_2_WARNING": "true",
    }
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "WARNING" not in result.stderr, result.stderr[-4000:]
    site = tmp_path / "site"
    for page in PAGES:
        assert (site / page / "index.html").is_file(), page
    assert not (site / "_incoming").exists()  # other branches' notes wait there to be folded in
    reference = (site / "reference" / "umsi" / "metrics" / "functional" / "index.html").read_text()
    assert "correlation_coefficient" in reference  # generated from the docstrings
    assert (site / "reference" / "umsi" / "index.html").read_text().count("load") > 0


def test_the_readme_is_a_front_door() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 160
    for page in PAGES[:13]:
        assert f"docs/{page}.md" in readme, page
