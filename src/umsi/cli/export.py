"""``umsi-export`` / ``python -m umsi.cli.export``: a checkpoint → ONNX or TorchScript, parity-checked, or an
MIT/Tübingen benchmark bundle / SALICON challenge JSON for a folder of stimuli (``conf/export.yaml``)."""

from __future__ import annotations

from omegaconf import DictConfig

from umsi.cli.config_check import hydra_cli
from umsi.paths import CONFIG_DIR


@hydra_cli("export", config_dir=CONFIG_DIR)
def main(cfg: DictConfig) -> None:
    if str(cfg.format) in ("benchmark", "salicon"):  # submission files: umsi.integrations (needs pysaliency)
        from umsi.integrations.benchmark import export_bundle_from_config

        export_bundle_from_config(cfg)
        return
    from umsi.inference.export import export_from_config

    export_from_config(cfg)


if __name__ == "__main__":
    main()
