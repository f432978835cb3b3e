"""``umsi-data-check`` / ``python -m umsi.cli.data_check data=<salicon|imp1k|gdi>``: validate a dataset tree
(``conf/data_check.yaml``). Exit code 0 clean or warnings only, 1 any error, 2 bad configuration."""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from umsi.cli.config_check import hydra_cli
from umsi.paths import CONFIG_DIR


def run(cfg: DictConfig) -> int:
    """Check ``cfg.data`` and print the report; returns the exit code."""
    from umsi.data.check import DatasetConfigError, format_report, scan_dataset

    try:
        problems, files = scan_dataset(cfg.data, progress=bool(cfg.get("progress", True)))
    except DatasetConfigError as err:
        print(f"umsi-data-check: config error: {err}", file=sys.stderr)
        return 2
    max_shown = cfg.get("max_problems_shown", 50)
    print(format_report(problems, files, None if max_shown is None else int(max_shown)))
    return 1 if any(p.severity == "error" for p in problems) else 0


@hydra_cli("data_check", config_dir=CONFIG_DIR)
def main(cfg: DictConfig) -> None:
    sys.exit(run(cfg))


if __name__ == "__main__":
    main()
