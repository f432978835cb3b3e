"""Fixed locations of the package: the Hydra config directory every tool composes from."""

from __future__ import annotations

import os
from pathlib import Path

# conf/ at the repository root; UMSI_CONFIG_DIR points the tools at another copy
CONFIG_DIR = os.environ.get("UMSI_CONFIG_DIR", str(Path(__file__).resolve().parents[2] / "conf"))
