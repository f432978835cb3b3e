"""``umsi-eval`` / ``python -m umsi.cli.eval``: evaluate checkpoints as in the paper's Tables 1–4
(``conf/eval.yaml``)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from umsi.cli.config_check import hydra_cli
from umsi.paths import CONFIG_DIR


@hydra_cli("eval", config_dir=CONFIG_DIR)
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from umsi.evaluation.report import tables_markdown
    from umsi.evaluation.runner import evaluate, split_lines

    out_dir = Path(cfg.output_dir or HydraConfig.get().runtime.output_dir)
    results = evaluate(cfg, out_dir)
    print(tables_markdown(results))
    print("images scored:", *split_lines(results), sep="\n  ")
    print(f"report: {out_dir}")


if __name__ == "__main__":
    main()
