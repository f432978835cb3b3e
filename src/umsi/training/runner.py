"""Stage and pipeline runners: what ``umsi-train`` does, callable from tests with a composed config.

A stage (pretrain or finetune) = data + model + loss + trainer → fit → best checkpoint. The pipeline composes
the pretrain and finetune configs with the same command-line overrides, checks what both need before the first
starts, hands the best pretrain checkpoint (lowest validation loss) to finetuning, then evaluates the best
finetuned weights.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import WandbLogger
from torch.utils.data import ConcatDataset

from umsi import runs
from umsi.callbacks.handoff import best_checkpoint
from umsi.callbacks.progress import RunProgress, RunProgressBar, StagePlan, limited_batches
from umsi.checkpoints.files import read_checkpoint
from umsi.checkpoints.lightning_io import SafeCheckpointIO
from umsi.data.splits import write_split
from umsi.errors import MissingPathError
from umsi.models.card import ModelCard, get_preprocessing, preprocessing_names
from umsi.models.encoder import LEGACY_XCEPTION, encoder_preprocessing
from umsi.models.registry import default_card, model_config
from umsi.models.umsi import count_parameters, without_encoder_init
from umsi.training.data_check import check_training_data
from umsi.training.evaluate import print_summary
from umsi.training.module import UMSILitModule, load_weights
from umsi.training.preflight import check_stage_needs
from umsi.utils.io import atomic_write, remove_partial_files, write_json
from umsi.utils.once import one_run

log = logging.getLogger(__name__)
STAGES = runs.STAGES
AUTO_PREPROCESSING = "auto"  # data.preprocessing: the encoder's own normalisation (resolve_preprocessing)


@dataclass
class StageResult:
    """Where a stage's outputs went."""

    output_dir: Path
    best_checkpoint: str
    last_checkpoint: str
    best_score: float | None
    is_global_zero: bool = True
    skipped_files: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()
    network: dict[str, Any] = field(default_factory=dict)  # encoder, parameters, preprocessing (summary.json)


def _plain(value: Any) -> Any:
    """A config value as plain Python (a DictConfig / ListConfig as dict / list)."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _container(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a config group that maps names to objects (callbacks, loggers)."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry is not None and "_target_" in entry]


def resolve_preprocessing(cfg: DictConfig) -> DictConfig:
    """``cfg`` with ``data.preprocessing=auto`` replaced by the encoder's own normalisation
    (:func:`~umsi.models.encoder.encoder_preprocessing`: ``official`` for ``legacy_xception``, the timm
    ``pretrained_cfg`` mean/std for the others), so the run's config, checkpoints and model card record the scheme
    that ran. Other values are kept; ``cfg`` is not changed."""
    if OmegaConf.select(cfg, "data.preprocessing", default=None) != AUTO_PREPROCESSING:
        return cfg
    encoder = OmegaConf.select(cfg, "model.encoder", default=None) or LEGACY_XCEPTION
    scheme = encoder_preprocessing(str(encoder))
    log.info("data.preprocessing=auto: %s (the normalisation of the %s encoder)", scheme.name, encoder)
    # a registered scheme by its name; any other as its dict form (the card and the transforms read both)
    value: Any = scheme.name if scheme.name in preprocessing_names() else scheme.to_dict()
    return OmegaConf.merge(cfg, {"data": {"preprocessing": value}})  # type: ignore[return-value]


def build_datamodule(cfg: DictConfig, skip_files: Sequence[str] = ()) -> pl.LightningDataModule:
    """The configured datamodule, set up for fitting, without the items of ``skip_files``
    (``data.preprocessing=auto`` resolved, :func:`resolve_preprocessing`)."""
    datamodule = instantiate(resolve_preprocessing(cfg).data, skip_files=list(skip_files), _convert_="all")
    datamodule.setup("fit")
    return datamodule


def weights_origin(cfg: DictConfig, from_checkpoint: bool = False) -> tuple[int, str]:
    """Where the weights of ``cfg``'s stage come from, as (log level, one line): a resumed checkpoint
    (``ckpt_path``), ``init_ckpt`` (in the pipeline's finetuning, the pretraining stage's best checkpoint), the
    caller's checkpoint (``from_checkpoint``), a local encoder file (``model.pretrained_file``, which wins), timm's
    ImageNet weights (``model.pretrained``: its cache folder), or random (a warning)."""
    stage = OmegaConf.select(cfg, "stage.name", default=None) or "this"
    model = cfg.get("model") or {}
    encoder = model.get("encoder", "the encoder")
    if cfg.get("ckpt_path"):
        return logging.INFO, f"{stage} stage: weights from the resumed checkpoint ckpt_path={cfg.ckpt_path}"
    if cfg.get("init_ckpt"):
        return logging.INFO, f"{stage} stage: weights from init_ckpt={cfg.init_ckpt} (every layer)"
    if from_checkpoint:
        return logging.INFO, f"{stage} stage: weights from a checkpoint loaded after building"
    if model.get("pretrained_file"):
        return logging.INFO, (
            f"{stage} stage: encoder {encoder} from model.pretrained_file={model.pretrained_file}; heads and "
            "classifier random"
        )
    if model.get("pretrained"):
        from umsi.models.encoder import pretrained_cache_dir

        return logging.INFO, (
            f"{stage} stage: encoder {encoder} from timm's ImageNet weights (model.pretrained=true, timm's cache "
            f"{pretrained_cache_dir(str(encoder))}); heads and classifier random"
        )
    return logging.WARNING, (
        f"{stage} stage: training starts from random weights (model.pretrained=false, no model.pretrained_file, "
        "init_ckpt or ckpt_path)"
    )


def describe_model(model: torch.nn.Module) -> str:
    """One line for the start of a run: encoder, its output stride and channels, parameter counts."""
    params, _ = count_parameters(model)
    encoder = getattr(model, "encoder", None)
    if encoder is None:
        return f"{params:,} parameters"
    name = getattr(encoder, "name", LEGACY_XCEPTION)
    return (
        f"{params:,} parameters ({count_parameters(encoder)[0]:,} in the {name} encoder, output stride "
        f"{encoder.output_stride}, {encoder.out_channels} channels)"
    )


def build_module(cfg: DictConfig, class_names: list[str], from_checkpoint: bool = False) -> UMSILitModule:
    """The LightningModule of ``cfg``. The encoder starts from ``model.pretrained_file`` or timm's ImageNet weights
    (``model.pretrained``) unless the weights come from a checkpoint: ``init_ckpt`` (loaded here), ``ckpt_path``
    (a resumed run) or ``from_checkpoint`` (the caller loads them); then no ImageNet weights are read. Logs where
    the weights come from (:func:`weights_origin`)."""
    model = _container(cfg.model)
    if from_checkpoint or cfg.get("init_ckpt") or cfg.get("ckpt_path"):
        model = without_encoder_init(model)
    log.log(*weights_origin(cfg, from_checkpoint))
    module = UMSILitModule(
        model=model,
        loss=_container(cfg.loss),
        optimizer=_container(cfg.optimizer),
        class_names=list(class_names),
        card=stage_card(cfg, class_names).to_dict(),
    )
    if cfg.get("init_ckpt"):
        load_weights(module, cfg.init_ckpt)
    return module


def validation_classes(datamodule: pl.LightningDataModule) -> set[int]:
    """The class labels (≥ 0) of a set-up datamodule's validation items."""
    pending = [getattr(datamodule, "val_set", None)]
    labels: set[int] = set()
    while pending:
        dataset = pending.pop()
        if isinstance(dataset, ConcatDataset):
            pending += list(dataset.datasets)
        elif dataset is not None:
            labels |= {item.label for item in getattr(dataset, "items", ()) if item.label >= 0}
    return labels


def stage_card(cfg: DictConfig, class_names: Sequence[str]) -> ModelCard:
    """The model card of the checkpoints a stage writes: ``cfg.model``'s architecture and arguments (encoder
    initialisation off: the weights come with the file), the data's classes, ``data.input_size`` and
    ``data.preprocessing``, and the source: this run folder and stage."""
    name, kwargs = model_config(without_encoder_init(_container(cfg.model)))
    stage = str(cfg.stage.name)
    run_dir = runs.run_of(Path(str(cfg.paths.output_dir)))
    return default_card(name).replace(
        model_args=kwargs,
        class_names=tuple(class_names),
        input_size=tuple(cfg.data.input_size),
        preprocessing=_plain(resolve_preprocessing(cfg).data.preprocessing),
        output_scale=float(kwargs.get("output_scale", default_card(name).output_scale)),
        name=f"{run_dir.name}/{stage}",
        source={"kind": "training", "run": str(run_dir), "stage": stage},
    )


LAST_CHECKPOINT = "last"
WANDB_ID_FILE = "wandb_run_id.txt"


def resume_checkpoint(cfg: DictConfig, output_dir: Path) -> str | None:
    """``ckpt_path``: a checkpoint path, or ``last`` = ``<stage dir>/checkpoints/last.ckpt`` of this run folder
    (resume a stopped run by starting it again in its own folder: ``hydra.run.dir=<run folder>``)."""
    value = cfg.get("ckpt_path")
    if value != LAST_CHECKPOINT:
        if value and not Path(value).is_file():
            raise MissingPathError(f"ckpt_path={value}: no such checkpoint")
        return value
    last = runs.last_checkpoint(output_dir)
    if not last.is_file():
        raise MissingPathError(
            f"ckpt_path=last: {last} does not exist. Start the stopped run again in its own folder, e.g. "
            "`umsi-train ckpt_path=last hydra.run.dir=outputs/<date>/<time>` (with the same overrides)"
        )
    return str(last)


def _wandb_overrides(cfg: DictConfig, output_dir: Path, resuming: bool) -> DictConfig:
    """Group a multirun's jobs under one W&B group, and continue the same W&B run when resuming."""
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg is None:
        return cfg
    extra: dict[str, Any] = {}
    if wandb_cfg.get("group") is None:
        extra["group"] = _sweep_group()
    id_file = output_dir / WANDB_ID_FILE
    if resuming and id_file.is_file():
        extra |= {"id": id_file.read_text().strip(), "resume": "allow"}
    return OmegaConf.merge(cfg, {"logger": {"wandb": extra}}) if extra else cfg


def _csv_overrides(cfg: DictConfig, ckpt_path: str | None) -> DictConfig:
    """A resumed stage continues its ``csv/metrics.csv``: the CSV logger keeps the rows logged before the
    checkpoint's step (``logger.csv.resume_step``), as W&B continues the run with the same id."""
    csv_cfg = (cfg.get("logger") or {}).get("csv")
    if csv_cfg is None or not ckpt_path or "resume_step" not in csv_cfg:
        return cfg
    return OmegaConf.merge(cfg, {"logger": {"csv": {"resume_step": _global_step(ckpt_path)}}})


def _global_step(ckpt_path: str) -> int:
    """The optimizer steps a Lightning checkpoint was saved after (memory-mapped: its tensors are not read)."""
    try:
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a zip-format file: read_checkpoint says what is wrong with it
        state = read_checkpoint(ckpt_path, key="ckpt_path")
    return int(state.get("global_step", 0))


def _sweep_group() -> str | None:
    """``sweep-<date>-<time>`` for the jobs of one Hydra multirun, ``None`` for a single run."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
    except ValueError:
        return None
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return "sweep-" + "-".join(Path(hydra_cfg.sweep.dir).parts[-2:])


def _remember_wandb_id(loggers: list[Any], output_dir: Path) -> None:
    for logger in loggers:
        run_id = getattr(logger.experiment, "id", None) if isinstance(logger, WandbLogger) else None
        if isinstance(run_id, str) and run_id:
            atomic_write(output_dir / WANDB_ID_FILE, lambda tmp, run_id=run_id: tmp.write_text(run_id + "\n"))


def plan_stage(cfg: DictConfig, skip_files: Sequence[str] = ()) -> StagePlan:
    """The batches a stage of ``cfg`` will run (its DataModule's loaders, ``trainer.max_epochs``, Lightning's
    ``limit_*_batches`` and sanity-check steps), for the whole run's progress row."""
    datamodule = build_datamodule(cfg, skip_files)
    val = limited_batches(len(datamodule.val_dataloader()), cfg.trainer.get("limit_val_batches"))
    return StagePlan(
        name=str(cfg.stage.name),
        epochs=int(cfg.trainer.get("max_epochs") or 1),
        train_batches=limited_batches(len(datamodule.train_dataloader()), cfg.trainer.get("limit_train_batches")),
        val_batches=val,
        sanity_batches=min(val, int(cfg.trainer.get("num_sanity_val_steps", 2) or 0)),
    )


def plan_run(stages: dict[str, DictConfig]) -> RunProgress | None:
    """The whole run's progress: every stage of ``stages`` (name → config), then the final evaluation (the last
    stage's validation loader); ``None`` (nothing counted) when no stage shows a
    :class:`~umsi.callbacks.progress.RunProgressBar`."""
    shown = [
        entry
        for stage_cfg in stages.values()
        for entry in (stage_cfg.get("callbacks") or {}).values()
        if entry is not None and str(entry.get("_target_", "")).endswith(RunProgressBar.__name__)
    ]
    if not shown:
        return None
    plans = [plan_stage(stage_cfg) for stage_cfg in stages.values()]
    return RunProgress(plans, final_batches=plans[-1].val_batches if plans else 0)


def train_stage(cfg: DictConfig, finish_wandb: bool = True, progress: RunProgress | None = None) -> StageResult:
    """Fit one stage under ``cfg.paths.output_dir``; writes the resolved config next to the checkpoints.
    ``finish_wandb=False`` leaves the W&B run open for the final evaluation's summary. ``progress`` (the whole
    run's) goes to the :class:`~umsi.callbacks.progress.RunProgressBar` among the callbacks, if any."""
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    cfg = resolve_preprocessing(cfg)
    ckpt_path = resume_checkpoint(cfg, output_dir)
    cfg = _wandb_overrides(cfg, output_dir, resuming=ckpt_path is not None)
    cfg = _csv_overrides(cfg, ckpt_path)
    atomic_write(runs.config_file(output_dir), lambda tmp: OmegaConf.save(cfg, tmp, resolve=True))
    skipped = check_training_data(cfg.data, output_dir)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg, skipped)
    if getattr(datamodule, "split", None):  # umsi-eval scores exactly these validation lists
        write_split(runs.split_file(output_dir), datamodule.split)
    module = build_module(cfg, datamodule.class_names)
    module.log_accuracy = len(validation_classes(datamodule)) > 1
    if not module.log_accuracy:
        log.info("val/acc is not logged: every validation image of this stage has the same class")
    log.info("model: %s", describe_model(module.model))
    callbacks = _instantiate_all(cfg.get("callbacks"))
    if progress is not None:
        progress.stage = str(cfg.stage.name)
        for callback in callbacks:
            if isinstance(callback, RunProgressBar):
                callback.run = progress
    if cfg.get("scheduler"):
        callbacks.append(instantiate(cfg.scheduler))
    loggers = _instantiate_all(cfg.get("logger"))
    for logger in loggers:
        logger.log_hyperparams({"config": _container(cfg)})
    _remember_wandb_id(loggers, output_dir)
    for stale in remove_partial_files(runs.checkpoints_dir(output_dir)):
        log.warning("removed %s, a checkpoint cut off by an earlier crash (the complete ones are kept)", stale)
    trainer: pl.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[SafeCheckpointIO()]
    )
    log.info("stage %s: %s%s", cfg.stage.name, output_dir, f" (resuming {ckpt_path})" if ckpt_path else "")
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    trainer.strategy.barrier("umsi-stage-end")  # under plain DDP every rank goes on: wait for rank 0's checkpoints
    info = best_checkpoint(trainer)
    for logger in loggers:
        logger.finalize("success")
    if finish_wandb:
        _finish_wandb()
    return StageResult(
        output_dir,
        info["best_model_path"],
        info["last_model_path"],
        info["best_model_score"],
        trainer.is_global_zero,
        tuple(skipped),
        tuple(datamodule.class_names),
        {
            "encoder": str(getattr(module.model.encoder, "name", LEGACY_XCEPTION)),
            "parameters": count_parameters(module.model)[0],
            "preprocessing": get_preprocessing(datamodule.preprocessing).name,
        },
    )


def _finish_wandb(summary: dict[str, Any] | None = None) -> None:
    """Close the W&B run so the next stage starts its own; ``summary`` goes into the run's summary first as
    ``final/<metric>`` and ``center_bias/<metric>`` (the same names in every run, so dashboards line up)."""
    try:
        import wandb

        if wandb.run is not None:
            if summary:
                values = {f"final/{k}": v for k, v in summary.get("model", {}).items()}
                values |= {f"center_bias/{k}": v for k, v in summary.get("center_bias", {}).items()}
                values["wall_seconds"] = summary.get("wall_seconds")
                wandb.run.summary.update(values)
            wandb.finish()
    except ImportError:
        pass


def evaluate_checkpoint(cfg: DictConfig, checkpoint: str, stage: StageResult | None = None) -> dict[str, Any]:
    """The end-of-run evaluation of ``checkpoint`` on the validation images its stage recorded (``split.json``):
    scored by ``umsi-eval``'s own code (:func:`umsi.evaluation.runner.final_evaluation`: original frame, ``umsi``
    convention, the MIT centre-bias placement), so ``summary.json`` and ``umsi-eval``'s tables agree. ``stage``
    (the stage that trained it) adds its class names and network description."""
    from umsi.evaluation.runner import final_evaluation

    device = "cuda" if torch.cuda.is_available() and cfg.trainer.get("accelerator") != "cpu" else "cpu"
    summary = final_evaluation(checkpoint, cfg, device=device)
    summary["checkpoint"] = {"path": checkpoint}
    if stage is not None:
        summary["classes"] = {"names": list(stage.class_names)}
        summary["network"] = dict(stage.network)
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


def _resume_if_started(cfg: DictConfig, stage_dir: Path) -> list[str]:
    """With ``ckpt_path=last`` a pipeline resumes each stage that has a ``last.ckpt`` and starts the others."""
    if cfg.get("ckpt_path") == LAST_CHECKPOINT and not runs.last_checkpoint(stage_dir).is_file():
        return ["ckpt_path=null"]
    return []


def _pipeline_stage(
    cfg: DictConfig, overrides: list[str], stage: str, root: Path | None, extra: Sequence[str] = ()
) -> DictConfig:
    """One stage of the pipeline ``cfg``: the user's overrides, its folder ``root/<stage>`` (none when ``root`` is
    None, before a run folder exists), ``extra``, then ``stage.<stage>_overrides``."""
    folder = [] if root is None else [f"paths.output_dir={root / stage}", *_resume_if_started(cfg, root / stage)]
    return compose_stage(stage, overrides, [*folder, *extra, *cfg.stage[f"{stage}_overrides"]])


def stage_configs(cfg: DictConfig, overrides: Sequence[str], root: Path | None = None) -> dict[str, DictConfig]:
    """The config of every stage ``run(cfg, overrides)`` trains, in order, composed as it will run them (the
    pipeline's finetuning without the ``init_ckpt`` pretraining will hand it)."""
    if cfg.stage.name != "pipeline":
        return {cfg.stage.name: cfg}
    return {stage: _pipeline_stage(cfg, list(overrides), stage, root) for stage in STAGES}


def check_run_needs(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """What every stage of ``run(cfg, overrides)`` needs (:func:`~umsi.training.preflight.check_stage_needs`),
    without a run folder: ``umsi-train`` calls it before Hydra makes one."""
    check_stage_needs(stage_configs(cfg, overrides))


def run_pipeline(cfg: DictConfig, overrides: list[str]) -> dict[str, Any]:
    """pretrain → best checkpoint (lowest val loss) → finetune → evaluation of the best finetuned weights.

    Before pretraining starts, every stage's needs are checked and every stage's data check runs (the later
    ones are reused, unchanged files are not read twice), so a problem in the finetuning data stops the
    pipeline before hours of pretraining."""
    root = Path(cfg.paths.output_dir)
    stages = stage_configs(cfg, overrides, root)
    check_stage_needs(stages)
    for name, stage_cfg in stages.items():
        check_training_data(stage_cfg.data, root / name)
    progress = plan_run(stages)
    pretrain = train_stage(stages["pretrain"], progress=progress)
    if not pretrain.best_checkpoint:
        raise RuntimeError("pretraining wrote no best checkpoint (is callbacks.model_checkpoint configured?)")
    log.info(
        "best pretrain checkpoint: %s (val/loss %s): finetuning starts from it",
        pretrain.best_checkpoint,
        pretrain.best_score,
    )
    finetune_cfg = _pipeline_stage(cfg, overrides, "finetune", root, [f"init_ckpt={pretrain.best_checkpoint}"])
    finetune = train_stage(finetune_cfg, finish_wandb=False, progress=progress)
    if not finetune.is_global_zero:
        return {}
    summary = evaluate_checkpoint(finetune_cfg, finetune.best_checkpoint or finetune.last_checkpoint, finetune)
    summary["stages"] = {
        "pretrain_best": pretrain.best_checkpoint,
        "pretrain_best_val_loss": pretrain.best_score,
        "finetune_best": finetune.best_checkpoint,
        "finetune_best_val_loss": finetune.best_score,
    }
    return summary


def run(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run ``cfg.stage.name`` (pretrain, finetune or pipeline), write ``summary.json`` in the run folder and
    print the validation table. Returns the summary (empty on the non-zero ranks of a plain-DDP run)."""
    with one_run():  # each warn_once warning is said once per run
        return _run(cfg, overrides)


def _run(cfg: DictConfig, overrides: list[str] | None) -> dict[str, Any]:
    output_dir = Path(cfg.paths.output_dir)
    start = time.perf_counter()
    if cfg.stage.name == "pipeline":
        summary = run_pipeline(cfg, list(overrides or []))
    elif cfg.stage.name in STAGES:
        check_stage_needs({cfg.stage.name: cfg})
        result = train_stage(cfg, finish_wandb=False, progress=plan_run({cfg.stage.name: cfg}))
        checkpoint = result.best_checkpoint or result.last_checkpoint
        summary = evaluate_checkpoint(cfg, checkpoint, result) if result.is_global_zero else {}
    else:
        raise ValueError(f"stage.name={cfg.stage.name!r}: choose pretrain, finetune or pipeline")
    if not summary:  # a non-zero rank of a plain-DDP (or SLURM) run: rank 0 evaluates and writes the summary
        return summary
    summary["wall_seconds"] = round(time.perf_counter() - start, 1)
    summary["overrides"] = list(overrides or [])
    _finish_wandb(summary)
    write_json(runs.summary_file(output_dir), summary)
    print_summary(summary, title=f"{cfg.stage.name}: validation of the final model")
    log.info("summary written to %s", runs.summary_file(output_dir))
    return summary


def summary_value(summary: dict[str, Any], key: str) -> float:
    """``optimized_metric``: a dotted key of ``summary.json`` (``model.cc``, ``model.kl``, ``model.acc`` …)."""
    node: Any = summary
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"optimized_metric={key}: summary.json has no such value (e.g. model.cc, model.kl)")
        node = node[part]
    return float(node)
