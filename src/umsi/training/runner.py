"""Stage and pipeline runners: what ``umsi-train`` does, callable from tests with a composed config.

A stage (pretrain or finetune) = data + model + loss + trainer → fit → best checkpoint. The pipeline composes
the pretrain and finetune configs with the same command-line overrides, hands the best pretrain checkpoint
(lowest validation loss) to finetuning, then evaluates the best finetuned weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from umsi.callbacks.handoff import best_checkpoint
from umsi.training.evaluate import evaluate, print_summary
from umsi.training.module import UMSILitModule, load_weights
from umsi.utils.io import atomic_write, write_json

log = logging.getLogger(__name__)
STAGES = ("pretrain", "finetune")


@dataclass
class StageResult:
    """Where a stage's outputs went."""

    output_dir: Path
    best_checkpoint: str
    last_checkpoint: str
    best_score: float | None


def _container(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a config group that maps names to objects (callbacks, loggers)."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry is not None and "_target_" in entry]


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.setup("fit")
    return datamodule


def build_module(cfg: DictConfig, class_names: list[str]) -> UMSILitModule:
    module = UMSILitModule(
        model=_container(cfg.model),
        loss=_container(cfg.loss),
        optimizer=_container(cfg.optimizer),
        class_names=list(class_names),
    )
    if cfg.get("init_ckpt"):
        log.info("initialising weights from %s", cfg.init_ckpt)
        load_weights(module, cfg.init_ckpt)
    elif cfg.model.get("pretrained_file") is None:
        log.warning("training starts from random weights (no model.pretrained_file, no init_ckpt)")
    return module


def train_stage(cfg: DictConfig) -> StageResult:
    """Fit one stage under ``cfg.paths.output_dir``; writes the resolved config next to the checkpoints."""
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(output_dir / "config.yaml", lambda tmp: OmegaConf.save(cfg, tmp, resolve=True))
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.class_names)
    callbacks = _instantiate_all(cfg.get("callbacks"))
    if cfg.get("scheduler"):
        callbacks.append(instantiate(cfg.scheduler))
    loggers = _instantiate_all(cfg.get("logger"))
    for logger in loggers:
        logger.log_hyperparams({"config": _container(cfg)})
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    log.info("stage %s: %s", cfg.stage.name, output_dir)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    info = best_checkpoint(trainer)
    for logger in loggers:
        logger.finalize("success")
    _finish_wandb()
    return StageResult(output_dir, info["best_model_path"], info["last_model_path"], info["best_model_score"])


def _finish_wandb() -> None:
    """Close the W&B run so the next stage starts its own."""
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish()
    except ImportError:
        pass


def evaluate_checkpoint(cfg: DictConfig, checkpoint: str) -> dict[str, dict[str, float]]:
    """Load ``checkpoint`` into the configured model and evaluate it on the stage's validation data."""
    datamodule = build_datamodule(cfg)
    module = build_module(OmegaConf.merge(cfg, {"init_ckpt": None}), datamodule.class_names)
    load_weights(module, checkpoint)
    device = "cuda" if torch.cuda.is_available() and cfg.trainer.get("accelerator") != "cpu" else "cpu"
    summary = evaluate(module.model, datamodule.val_dataloader(), device)
    summary["checkpoint"] = {"path": checkpoint}
    summary["classes"] = {"names": datamodule.class_names}
    return summary


def _applies_to(override: str, base: DictConfig) -> bool:
    """Whether a command-line override concerns a config: appends (``+k=v``) and config-group choices always
    do, a value override only when ``base`` has the key."""
    if override.startswith("+"):
        return True
    key = override.lstrip("~").split("=", 1)[0]
    if GlobalHydra.instance().config_loader().get_group_options(key):
        return True
    node: Any = OmegaConf.to_container(base, resolve=False)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def compose_stage(stage: str, overrides: list[str], extra: list[str]) -> DictConfig:
    """Compose the ``train`` config for one stage with the user's overrides (``stage``/``hydra`` ones
    removed, and those whose key this stage does not have, e.g. finetune-only data keys in pretraining)."""
    base = compose(config_name="train", overrides=[f"stage={stage}"])
    kept = []
    for override in overrides:
        if override.lstrip("+~").startswith(("stage=", "stage.", "hydra.", "hydra/")):
            continue
        if _applies_to(override, base):
            kept.append(override)
        else:
            log.info("override %s does not apply to the %s stage; skipped there", override, stage)
    return compose(config_name="train", overrides=[f"stage={stage}", *kept, *extra])


def run_pipeline(cfg: DictConfig, overrides: list[str]) -> dict[str, Any]:
    """pretrain → best checkpoint (lowest val loss) → finetune → evaluation of the best finetuned weights."""
    root = Path(cfg.paths.output_dir)
    pretrain_cfg = compose_stage(
        "pretrain", overrides, [f"paths.output_dir={root / 'pretrain'}", *cfg.stage.pretrain_overrides]
    )
    pretrain = train_stage(pretrain_cfg)
    if not pretrain.best_checkpoint:
        raise RuntimeError("pretraining wrote no best checkpoint (is callbacks.model_checkpoint configured?)")
    log.info("best pretrain checkpoint: %s (val/loss %s)", pretrain.best_checkpoint, pretrain.best_score)
    finetune_cfg = compose_stage(
        "finetune",
        overrides,
        [
            f"paths.output_dir={root / 'finetune'}",
            f"init_ckpt={pretrain.best_checkpoint}",
            *cfg.stage.finetune_overrides,
        ],
    )
    finetune = train_stage(finetune_cfg)
    summary = evaluate_checkpoint(finetune_cfg, finetune.best_checkpoint or finetune.last_checkpoint)
    summary["stages"] = {
        "pretrain_best": pretrain.best_checkpoint,
        "pretrain_best_val_loss": pretrain.best_score,
        "finetune_best": finetune.best_checkpoint,
        "finetune_best_val_loss": finetune.best_score,
    }
    return summary


def run(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run ``cfg.stage.name`` (pretrain, finetune or pipeline), write ``summary.json`` in the run folder and
    print the validation table. Returns the summary."""
    output_dir = Path(cfg.paths.output_dir)
    if cfg.stage.name == "pipeline":
        summary = run_pipeline(cfg, list(overrides or []))
    elif cfg.stage.name in STAGES:
        result = train_stage(cfg)
        summary = evaluate_checkpoint(cfg, result.best_checkpoint or result.last_checkpoint)
    else:
        raise ValueError(f"stage.name={cfg.stage.name!r}: choose pretrain, finetune or pipeline")
    write_json(output_dir / "summary.json", summary)
    print_summary(summary, title=f"{cfg.stage.name}: validation of the final model")
    log.info("summary written to %s", output_dir / "summary.json")
    return summary
