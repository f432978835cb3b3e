"""``umsi-score`` / ``python -m umsi.cli.score maps=<folder> data=<dataset>``: score saliency maps made by any tool
with umsi's metrics (``conf/score.yaml``, :mod:`umsi.evaluation.external`)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from umsi.cli.config_check import hydra_cli
from umsi.paths import CONFIG_DIR


@hydra_cli("score", config_dir=CONFIG_DIR)
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from umsi.evaluation.external import score_maps, score_markdown

    out_dir = Path(cfg.output_dir or HydraConfig.get().runtime.output_dir)
    print(score_markdown(score_maps(cfg, out_dir)))
    print(f"report: {out_dir}")


if __name__ == "__main__":
    main()
