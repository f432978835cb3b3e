"""``umsi-serve`` / ``python -m umsi.cli.serve``: saliency and importance over HTTP on LitServe — ``POST /predict``,
``GET /health`` and the drop-an-image page at ``GET /`` (``conf/serve.yaml``)."""

from __future__ import annotations

from omegaconf import DictConfig

from umsi.cli.config_check import hydra_cli
from umsi.paths import CONFIG_DIR
from umsi.serving.settings import check_serve_config


@hydra_cli("serve", config_dir=CONFIG_DIR, check=check_serve_config)
def main(cfg: DictConfig) -> None:
    from umsi.serving.server import serve

    serve(cfg)


if __name__ == "__main__":
    main()
