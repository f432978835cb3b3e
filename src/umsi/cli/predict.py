"""``umsi-predict`` / ``python -m umsi.cli.predict``: heatmaps, overlays and class probabilities for image files,
folders or globs (``conf/predict.yaml``)."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from umsi.cli.config_check import hydra_cli
from umsi.errors import UserError
from umsi.paths import CONFIG_DIR


@hydra_cli("predict", config_dir=CONFIG_DIR)
def main(cfg: DictConfig) -> None:
    """Exit code 0 when every result was written, 1 when some inputs failed, 2 when nothing could run."""
    from hydra.core.hydra_config import HydraConfig

    from umsi.inference.predict import run_predict

    output = Path(cfg.output or HydraConfig.get().runtime.output_dir)
    try:
        code = run_predict(cfg, output)
    except (FileNotFoundError, ValueError) as err:
        if isinstance(err, UserError):  # one line from hydra_cli, with its kind and exit code
            raise
        print(f"umsi-predict: error: {err}", file=sys.stderr)
        code = 2
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
