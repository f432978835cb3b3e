"""Load a model for evaluation from a training checkpoint (weights only, no unpickling of objects)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from umsi.checkpoints.files import load_matching, read_checkpoint
from umsi.errors import CheckpointError, MissingPathError
from umsi.models import without_encoder_init
from umsi.models.encoder import LEGACY_XCEPTION, encoder_preprocessing
from umsi.utils.normalization import AUTO

log = logging.getLogger(__name__)

DEFAULT_INPUT_SIZE = (240, 320)
KERAS_SUFFIXES = (".h5", ".hdf5")


@dataclass
class LoadedModel:
    """A network ready for inference plus what is needed to feed it and name its outputs."""

    name: str
    model: nn.Module
    class_names: list[str]
    input_size: tuple[int, int]
    preprocessing: str
    output_scale: float
    path: Path


def save_model(
    path: str | Path,
    model: nn.Module,
    input_size: tuple[int, int],
    class_names: list[str] | None = None,
    display_name: str | None = None,
    preprocessing: str = "official",
) -> Path:
    """Write ``model`` (a ``UMSI()``: its config is stored as ``umsi.models.UMSI`` with the defaults) as the
    weights-only checkpoint :func:`load_model` reads, with the network input ``input_size`` (rows, cols, px).
    For tests, benchmarks and demos; training writes its own Lightning checkpoints."""
    hparams: dict[str, Any] = {
        "model": {"_target_": "umsi.models.UMSI"},
        "data": {"input_size": [int(input_size[0]), int(input_size[1])], "preprocessing": preprocessing},
    }
    if class_names is not None:
        hparams["class_names"] = list(class_names)
    if display_name is not None:
        hparams["display_name"] = display_name
    state = {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "hyper_parameters": hparams}
    torch.save(state, path)
    return Path(path)


def _run_data_settings(checkpoint: Path) -> dict:
    """data.input_size / data.preprocessing of the run that wrote ``checkpoint`` (``<stage>/config.yaml``)."""
    config = checkpoint.parent.parent / "config.yaml"
    if not config.is_file():
        return {}
    data = OmegaConf.load(config).get("data", {})
    return {k: data[k] for k in ("input_size", "preprocessing") if k in data}


def load_model(
    path: str | Path,
    name: str | None = None,
    input_size: tuple[int, int] | None = None,
    preprocessing: str | None = None,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """Rebuild the network stored in a Lightning checkpoint written by ``umsi-train``.

    The architecture comes from the checkpoint's plain hyper-parameters, the input size and preprocessing from
    the hyper-parameters, else the run's ``config.yaml``, else the arguments (default 240×320; preprocessing: the
    encoder's own, :func:`~umsi.models.encoder.encoder_preprocessing` — ``official`` for ``legacy_xception``).
    Also loads ``umsi-convert-keras`` output (named "UMSI (official)"). Loads with ``torch.load(weights_only=True)``.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"checkpoint {path} does not exist: check the path (a run's checkpoints/*.ckpt)")
    if path.suffix.lower() in KERAS_SUFFIXES:
        from umsi.official.convert import checkpoint_from_keras

        log.warning("%s: converting the Keras file in memory (default class order; see umsi-convert-keras)", path)
        state = checkpoint_from_keras(path)
    else:
        state = read_checkpoint(path)
    hparams = state.get("hyper_parameters") or {}
    if "model" not in hparams or "state_dict" not in state:
        raise CheckpointError(
            f"{path} is not a umsi checkpoint (no model hyper-parameters / state_dict): use a checkpoint written "
            "by umsi-train or umsi-convert-keras"
        )
    model = instantiate(without_encoder_init(hparams["model"]), _convert_="all")
    weights = {k.removeprefix("model."): v for k, v in state["state_dict"].items() if k.startswith("model.")}
    load_matching(model, weights, str(path), "The file's weights do not fit the architecture stored in it.")
    data = {**_run_data_settings(path), **(hparams.get("data") or {})}
    size = input_size or data.get("input_size") or DEFAULT_INPUT_SIZE
    num_classes = getattr(model, "num_classes", 0)
    class_names = list(hparams.get("class_names") or [f"class_{i}" for i in range(num_classes)])
    return LoadedModel(
        name=name or hparams.get("display_name") or _default_name(path),
        model=model.eval().to(device),
        class_names=class_names,
        input_size=(int(size[0]), int(size[1])),
        preprocessing=_preprocessing(preprocessing or data.get("preprocessing"), hparams["model"]),
        output_scale=float(getattr(model, "output_scale", 2.0)),
        path=path,
    )


def _preprocessing(recorded: str | None, model: dict[str, Any]) -> str:
    """The recorded normalisation, or (none recorded, or ``auto``) the encoder's own."""
    if recorded and recorded != AUTO:
        return str(recorded)
    return encoder_preprocessing(str(model.get("encoder") or LEGACY_XCEPTION))


def _default_name(path: Path) -> str:
    """``<run>/<stage>/checkpoints/x.ckpt`` → ``<run time>/<stage>``; else the file stem."""
    if path.parent.name == "checkpoints":
        return f"{path.parent.parent.parent.name}/{path.parent.parent.name}"
    return path.stem


def find_latest_checkpoint(outputs: str | Path) -> Path:
    """The final model of the newest ``umsi-train`` run under ``outputs`` (``<date>/<time>/summary.json``):
    the best finetuned checkpoint of the newest pipeline run (what ``make train`` runs), or, when there is no
    pipeline run, the evaluated checkpoint of the newest single-stage run."""
    summaries = sorted(Path(outputs).glob("*/*/summary.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    runs = [json.loads(p.read_text()) for p in summaries]
    pipeline = [(s.get("stages") or {}).get("finetune_best") for s in runs]
    single = [(s.get("checkpoint") or {}).get("path") for s in runs]
    for candidate in [*pipeline, *single]:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise FileNotFoundError(
        f"no finished umsi-train run with a checkpoint under {outputs}; run `make train` first or pass "
        "checkpoints=[path/to/model.ckpt]"
    )


def resolve_checkpoint(cfg: Any) -> Path:
    """``cfg.ckpt``: a path, or ``latest`` (the newest ``umsi-train`` run under ``cfg.outputs_dir``, read only
    then). Raises ``FileNotFoundError`` with a message naming the ``ckpt`` key."""
    ckpt = cfg.ckpt
    if ckpt is None or str(ckpt) == "":
        raise FileNotFoundError("ckpt is not set: pass ckpt=path/to/model.ckpt or ckpt=latest")
    if str(ckpt) == "latest":
        try:
            return find_latest_checkpoint(cfg.outputs_dir)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"ckpt=latest: no finished umsi-train run with a checkpoint under {cfg.outputs_dir} (outputs_dir); "
                "run `make train` first or pass ckpt=path/to/model.ckpt"
            ) from None
    path = Path(str(ckpt)).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ckpt={ckpt}: no such file (a checkpoint, converted weights or an exported model)")
    return path
