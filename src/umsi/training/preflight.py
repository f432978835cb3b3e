"""What every stage of a run needs, checked before the first stage starts.

A pipeline's finetuning used to find out only after hours of pretraining that it could not start (a missing
file, too few SALICON images to mix in). :func:`check_stage_needs` takes the config of every stage as it will run
(the runner composes them) and checks, without reading any image:

* the files each stage names: ``init_ckpt``, ``model.pretrained_file``, ``ckpt_path`` (other than ``last``);
* the folders and files of its data trees: ``data.root``, ``data.salicon_root``, ``data.class_mapping``;
* the input size against the encoder's smallest input (``data.input_size``, ``model.encoder``);
* the SALICON training images finetuning mixes into every epoch: a ``data.salicon_per_epoch`` larger than the
  images found is a warning, and finetuning draws all of them (:func:`umsi.data.datasets.salicon_mix`).

Each problem is a one-line :class:`~umsi.errors.UserError` naming the stage and the key. ``umsi-train`` runs it
before Hydra makes a run folder (``umsi.cli.train``) and the runner again at its start, where the pipeline also
runs the data check of every stage's files before pretraining (``umsi.training.runner.run_pipeline``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from umsi.data.datasets import salicon_mix
from umsi.data.layouts import IMAGE_SUFFIXES
from umsi.errors import ConfigError, MissingPathError
from umsi.models.encoder import LEGACY_XCEPTION, min_input_size

# config key → (what the file is, what to give instead), for the keys naming a file a stage reads
FILES = {
    "init_ckpt": ("the weights to start from", "a run's checkpoints/*.ckpt or umsi-convert-keras output"),
    "model.pretrained_file": ("the encoder's timm weights", "a local timm weights file for the encoder"),
    "ckpt_path": (
        "the checkpoint to resume from",
        "a Lightning checkpoint to resume from, or ckpt_path=last for this run folder's last.ckpt",
    ),
    "data.class_mapping": ("the class mapping", "the class mapping JSON"),
}
FOLDERS = ("data.root", "data.salicon_root")
SYNTHETIC_HINT = "or generate the synthetic one with `umsi-make-synthetic --out data/synthetic`"


def check_stage_needs(stages: Mapping[str, DictConfig]) -> None:
    """Check what each stage (name → its composed config, in running order) needs; see the module docstring.

    Raises :class:`~umsi.errors.MissingPathError` for a missing file or folder and
    :class:`~umsi.errors.ConfigError` for an input below the encoder's minimum or a negative SALICON mix."""
    for name, cfg in stages.items():
        _check_paths(name, cfg)
        _check_input_size(name, cfg)
        _check_salicon_mix(cfg)


def _value(cfg: DictConfig, key: str) -> str | None:
    value = OmegaConf.select(cfg, key, default=None)
    return None if value is None or value == "" else str(value)


def _check_paths(stage: str, cfg: DictConfig) -> None:
    data = cfg.get("data") or {}
    for key in FOLDERS:
        if key.split(".", 1)[1] not in data:
            continue
        value = _value(cfg, key)
        fix = f"point {key} or paths.datasets_dir at the dataset, {SYNTHETIC_HINT}"
        if value is None:
            raise ConfigError(f"the {stage} stage reads {key}, which is not set: {fix}")
        if not Path(value).exists():
            raise MissingPathError(f"the {stage} stage reads {key}={value}: no such folder — {fix}")
        if not Path(value).is_dir():
            raise MissingPathError(f"the {stage} stage reads {key}={value}: a file, not a dataset folder — {fix}")
    for key, (what, give) in FILES.items():
        value = _value(cfg, key)
        if value is not None and not (key == "ckpt_path" and value == "last") and not Path(value).is_file():
            raise MissingPathError(
                f"the {stage} stage needs {key}={value} ({what}): no such file — give the path of {give}, or set "
                f"{key}=null"
            )


def _check_input_size(stage: str, cfg: DictConfig) -> None:
    encoder = _value(cfg, "model.encoder") or LEGACY_XCEPTION
    smallest = min_input_size(encoder)
    size = [int(side) for side in OmegaConf.select(cfg, "data.input_size", default=None) or ()]
    if size and min(size) < smallest:
        raise ConfigError(
            f"data.input_size={size} is too small for the {stage} stage: the {encoder} encoder needs at least "
            f"{smallest}×{smallest} px (set data.input_size=[{max(size[0], smallest)},{max(size[1], smallest)}] "
            "or larger)"
        )


def _check_salicon_mix(cfg: DictConfig) -> None:
    requested = OmegaConf.select(cfg, "data.salicon_per_epoch", default=None)
    root = _value(cfg, "data.salicon_root")
    if requested is None or root is None:
        return
    images = Path(root) / "images" / "train"
    if not images.is_dir():  # the data check names the missing folder
        return
    found = sum(1 for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    salicon_mix(int(requested), found, root)
