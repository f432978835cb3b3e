"""``umsi-export`` / ``python -m umsi.cli.export``: a checkpoint → ONNX or TorchScript, parity-checked
(``conf/export.yaml``)."""

from __future__ import annotations

from omegaconf import DictConfig

from umsi.cli.config_check import hydra_cli
from umsi.paths import CONFIG_DIR


@hydra_cli("export", config_dir=CONFIG_DIR)
def main(cfg: DictConfig) -> None:
    from umsi.inference.export import export_from_config

    export_from_config(cfg)


if __name__ == "__main__":
    main()
