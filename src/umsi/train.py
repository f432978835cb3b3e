"""``umsi-train`` / ``python -m umsi.train``: Hydra entry point for pretraining, finetuning and the pipeline."""

from __future__ import annotations

import os
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from umsi.config_check import check_train_paths, hydra_cli

CONFIG_DIR = os.environ.get("UMSI_CONFIG_DIR", str(Path(__file__).resolve().parents[2] / "conf"))


@hydra_cli("train", config_dir=CONFIG_DIR, check=check_train_paths)
def main(cfg: DictConfig) -> float | None:
    """Returns ``optimized_metric`` of the run's summary (final validation CC by default) for sweepers."""
    from umsi.training.runner import run, summary_value  # heavy imports after Hydra has parsed the command line

    summary = run(cfg, list(HydraConfig.get().overrides.task))
    if not summary:  # a non-zero DDP rank
        return None
    return summary_value(summary, cfg.get("optimized_metric") or "model.cc")


if __name__ == "__main__":
    main()
