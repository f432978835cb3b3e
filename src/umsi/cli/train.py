"""``umsi-train`` / ``python -m umsi.cli.train``: pretraining, finetuning or the pipeline (``conf/train.yaml``)."""

from __future__ import annotations

from omegaconf import DictConfig

from umsi.cli.config_check import check_train_paths, hydra_cli
from umsi.paths import CONFIG_DIR


@hydra_cli("train", config_dir=CONFIG_DIR, check=check_train_paths)
def main(cfg: DictConfig) -> float | None:
    """Returns ``optimized_metric`` of the run's summary (final validation CC by default) for sweepers."""
    from hydra.core.hydra_config import HydraConfig

    from umsi.training.runner import run, summary_value

    summary = run(cfg, list(HydraConfig.get().overrides.task))
    if not summary:  # a non-zero DDP rank
        return None
    return summary_value(summary, cfg.get("optimized_metric") or "model.cc")


if __name__ == "__main__":
    main()
