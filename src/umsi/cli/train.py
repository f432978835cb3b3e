"""``umsi-train`` / ``python -m umsi.cli.train``: pretraining, finetuning or the pipeline (``conf/train.yaml``)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from umsi.cli.config_check import hydra_cli
from umsi.errors import ConfigError, MissingPathError
from umsi.paths import CONFIG_DIR

SYNTHETIC_HINT = "or generate the synthetic one with `umsi-make-synthetic --out data/synthetic`"


def check_train_paths(cfg: DictConfig) -> None:
    """The dataset folders (``data.root``, ``data.salicon_root``) and the files named by ``init_ckpt``,
    ``model.pretrained_file`` and ``ckpt_path`` (other than ``last``) must exist; raises
    :class:`~umsi.errors.MissingPathError` (or :class:`~umsi.errors.ConfigError` for an unset root)."""
    data = cfg.get("data")
    for name in ("root", "salicon_root"):
        if data is None or name not in data:
            continue
        key = f"data.{name}"
        value = OmegaConf.select(cfg, key, default=None)
        fix = f"point {key} or paths.datasets_dir at the dataset, {SYNTHETIC_HINT}"
        if not value:
            raise ConfigError(f"{key} is not set: {fix}")
        path = Path(str(value))
        if not path.exists():
            raise MissingPathError(f"{key}={path} does not exist — {fix}")
        if not path.is_dir():
            raise MissingPathError(f"{key}={path} is a file, not a dataset folder — {fix}")
    files = {
        "init_ckpt": "the weights to start from (a run's checkpoints/*.ckpt or umsi-convert-keras output)",
        "model.pretrained_file": "a local timm weights file for the encoder",
        "ckpt_path": "a Lightning checkpoint to resume from, or ckpt_path=last for this run folder's last.ckpt",
    }
    for key, what in files.items():
        value = OmegaConf.select(cfg, key, default=None)
        if not value or (key == "ckpt_path" and value == "last"):
            continue
        if not Path(str(value)).is_file():
            raise MissingPathError(f"{key}={value}: no such file — give the path of {what}, or set {key}=null")


def check_encoder_weights(cfg: DictConfig) -> None:
    """With ``model.pretrained=true`` and no ``model.pretrained_file`` (which wins) the encoder's ImageNet weights
    must be in timm's cache or downloadable (they are downloaded into the cache here). Not needed when the
    weights come from ``init_ckpt``. Raises :class:`~umsi.models.PretrainedWeightsError` (one line naming
    both keys, the weights and timm's cache folder). The cached file is then opened as the loader opens it: a
    damaged one (empty, partial) is refused with one line naming it and saying to delete it
    (:func:`~umsi.models.encoder.check_cached_weights`). Imports torch and timm only when it has something to check."""
    model = cfg.get("model") or {}
    if not model.get("pretrained") or model.get("pretrained_file") or cfg.get("init_ckpt"):
        return
    from umsi.models.encoder import check_cached_weights, fetch_pretrained_weights

    encoder = str(model.get("encoder"))
    check_cached_weights(encoder, fetch_pretrained_weights(encoder))


def check_stage_needs(cfg: DictConfig) -> None:
    """What every stage of the run needs (files, data folders, input size, the SALICON mix), checked before
    Hydra makes the run folder: :func:`umsi.training.runner.check_run_needs` on the composed config."""
    from umsi.training.runner import check_run_needs

    check_run_needs(cfg, list(cfg.hydra.overrides.task))


def precheck_train(cfg: DictConfig) -> None:
    """Everything checked before Hydra makes a run folder: paths, what every stage needs, the encoder weights."""
    check_train_paths(cfg)
    check_stage_needs(cfg)
    check_encoder_weights(cfg)


@hydra_cli("train", config_dir=CONFIG_DIR, check=check_train_paths, precheck=precheck_train)
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
