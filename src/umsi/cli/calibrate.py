"""``umsi-calibrate`` / ``python -m umsi.cli.calibrate``: fit a per-domain calibration of a trained model on n images
of a registered dataset and store it in the model file's card (``conf/calibrate.yaml``)."""

from __future__ import annotations

from omegaconf import DictConfig

from umsi.cli.config_check import hydra_cli
from umsi.paths import CONFIG_DIR


@hydra_cli("calibrate", config_dir=CONFIG_DIR)
def main(cfg: DictConfig) -> None:
    from umsi.evaluation.calibrate import calibrate_from_config

    calibrate_from_config(cfg)


if __name__ == "__main__":
    main()
