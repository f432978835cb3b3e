"""``umsi-eval`` / ``python -m umsi.eval``: evaluate checkpoints as in the paper's Tables 1–4."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from umsi.config_check import hydra_cli
from umsi.train import CONFIG_DIR


@hydra_cli("eval", config_dir=CONFIG_DIR)
def main(cfg: DictConfig) -> None:
    from umsi.evaluation.report import tables_markdown  # heavy imports after Hydra has parsed the command line
    from umsi.evaluation.runner import evaluate

    out_dir = Path(cfg.output_dir or HydraConfig.get().runtime.output_dir)
    results = evaluate(cfg, out_dir)
    print(tables_markdown(results))
    print(f"report: {out_dir}")


if __name__ == "__main__":
    main()
