"""``umsi-train`` / ``python -m umsi.cli.train``: pretraining, finetuning or the pipeline (``conf/train.yaml``)."""

from __future__ import annotations

from omegaconf import DictConfig

from umsi.cli.config_check import hydra_cli
from umsi.paths import CONFIG_DIR


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
    """Everything checked before Hydra makes a run folder: what every stage needs (its files, data folders, input
    size, SALICON mix: the one pre-run check, :mod:`umsi.training.preflight`, which the runner repeats at its start
    for a run started without this command) and the encoder weights."""
    check_stage_needs(cfg)
    check_encoder_weights(cfg)


@hydra_cli("train", config_dir=CONFIG_DIR, precheck=precheck_train)
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
