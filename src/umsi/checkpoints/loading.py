"""The one loader of model files (training checkpoints, converted official weights, the Keras ``.h5``) and their
model card (:mod:`umsi.models.card`): the card in the file says how to build, feed and name the network."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from umsi import runs
from umsi.checkpoints.files import load_matching, read_checkpoint
from umsi.errors import CheckpointError, ConfigError, MissingPathError
from umsi.models.card import CARD_KEY, ModelCard, Preprocessing
from umsi.models.registry import create_model, default_card, model_config
from umsi.models.umsi import without_encoder_init
from umsi.utils.io import atomic_write

log = logging.getLogger(__name__)

KERAS_SUFFIXES = (".h5", ".hdf5")


@dataclass
class LoadedModel:
    """A network ready for inference (eval mode) plus its card: what feeds it and names its outputs."""

    model: nn.Module
    card: ModelCard
    path: Path
    name: str

    @property
    def class_names(self) -> list[str]:
        return list(self.card.class_names)

    @property
    def input_size(self) -> tuple[int, int]:
        """(rows, cols) the images are letterboxed to."""
        return self.card.input_size

    @property
    def preprocessing(self) -> Preprocessing:
        return self.card.preprocessing

    @property
    def output_scale(self) -> float:
        return self.card.output_scale


def save_model(
    path: str | Path,
    model: nn.Module,
    input_size: Sequence[int],
    class_names: Sequence[str] | None = None,
    display_name: str | None = None,
    preprocessing: str | Preprocessing = "official",
    architecture: str = "umsi",
    model_args: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` (built as ``create_model(architecture, **model_args)``; ``UMSI()`` by default) as the
    weights-only checkpoint :func:`load_model` reads, with its card: the network input ``input_size`` (rows, cols,
    px), ``preprocessing``, the class names (``class_<i>`` when None) and source ``saved``. For tests, benchmarks
    and demos; training writes its own Lightning checkpoints (with their card)."""
    names = list(class_names) if class_names is not None else _generic_names(model)
    card = default_card(architecture).replace(
        model_args=dict(model_args or {}),
        class_names=tuple(names),
        input_size=tuple(int(v) for v in input_size),
        preprocessing=preprocessing,
        output_scale=float(getattr(model, "output_scale", default_card(architecture).output_scale)),
        name=display_name or Path(path).stem,
        source={"kind": "saved"},
    )
    state = {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, CARD_KEY: card.to_dict()}
    torch.save(state, path)
    return Path(path)


def store_calibration(
    path: str | Path, domain: str, calibration: Mapping[str, Any], output: str | Path | None = None
) -> ModelCard:
    """Add (or replace) the calibration of ``domain`` in the card of the model file ``path`` and write the file
    to ``output`` (default: ``path`` itself, atomically: temp file, then rename). The other domains are kept; a
    file written before the card existed gets its card built as :func:`read_card` does. Returns the new card.
    Raises :class:`CheckpointError` for an exported ``.onnx`` / ``.ts`` file (calibrate the checkpoint, then
    export it) or a file that does not load."""
    path = Path(path)
    if path.suffix.lower() in (*KERAS_SUFFIXES, ".onnx", ".ts", ".torchscript"):
        raise CheckpointError(
            f"{path}: calibrate a checkpoint (.ckpt: umsi-train, umsi-convert-keras), then export it; an exported or "
            "Keras file is not rewritten"
        )
    state = read_checkpoint(path)
    card = read_card(state, path)
    card = card.replace(calibration={**card.calibration, str(domain): dict(calibration)})
    state[CARD_KEY] = card.to_dict()
    atomic_write(output or path, lambda tmp: torch.save(state, tmp), durable=True)
    return card


def _generic_names(model: nn.Module) -> list[str]:
    return [f"class_{i}" for i in range(int(getattr(model, "num_classes", 0)))]


def _run_data_settings(checkpoint: Path) -> tuple[dict, Path | None]:
    """data.input_size / data.preprocessing of the run that wrote ``checkpoint`` (``<stage>/config.yaml``), and
    that file (None when there is none)."""
    stage = runs.stage_of(checkpoint)
    config = runs.config_file(stage) if stage is not None else None
    if config is None or not config.is_file():
        return {}, None
    data = runs.stage_config(stage).get("data") or {}
    return {k: data[k] for k in ("input_size", "preprocessing") if k in data}, config


def read_card(state: Mapping[str, Any], path: Path) -> ModelCard:
    """The model card of a checkpoint dict read from ``path``. A file written before the card existed gets one
    built from its hyper-parameters and, for the input size and preprocessing, the run's ``config.yaml`` next
    to it (else the card defaults), with one warning naming the fallback. Raises :class:`CheckpointError`
    naming the file when neither a card nor model hyper-parameters are there, or the card is unreadable."""
    raw = state.get(CARD_KEY)
    try:
        if raw is not None:
            return ModelCard.from_dict(raw)
        return _card_from_hyperparameters(state, path)
    except ConfigError as err:
        raise CheckpointError(f"{path}: its model card does not read ({err}); write the file again") from None


def _card_from_hyperparameters(state: Mapping[str, Any], path: Path) -> ModelCard:
    hparams = state.get("hyper_parameters") or {}
    if "model" not in hparams:
        raise CheckpointError(
            f"{path} is not a umsi checkpoint (no model card or model hyper-parameters): use a file written by "
            "umsi-train, umsi-convert-keras or umsi.checkpoints.loading.save_model"
        )
    name, kwargs = model_config(hparams["model"])
    data, config = _run_data_settings(path)
    stored = hparams.get("data") or {}  # converted weights and save_model files of that time kept these
    data.update(stored)
    fallback = "its hyper-parameters" if "input_size" in stored else (str(config) if config else None)
    card = default_card(name)
    log.warning(
        "%s has no model card (written before umsi stored one): input size and preprocessing come from %s%s",
        path,
        fallback or f"the defaults ({card.input_size[0]}×{card.input_size[1]}, {card.preprocessing.name})",
        "" if fallback else " as no config.yaml is next to it; load it in its run folder or save it again",
    )
    conversion = state.get("umsi_conversion") or {}
    source = (
        {"kind": "converted", "file": conversion.get("source_file"), "sha256": conversion.get("source_sha256")}
        if conversion
        else {"kind": "training", "run": None, "stage": None}
    )
    classes = hparams.get("class_names") or ()
    return card.replace(
        model_args=kwargs,
        class_names=tuple(classes),
        input_size=tuple(data.get("input_size", card.input_size)),
        preprocessing=data.get("preprocessing", card.preprocessing),
        output_scale=float(kwargs.get("output_scale", card.output_scale)),
        name=hparams.get("display_name") or _default_name(path),
        source=source,
    )


def build_from_card(card: ModelCard) -> nn.Module:
    """The card's network with random weights (its encoder's ImageNet initialisation off)."""
    return create_model(card.architecture, **without_encoder_init(card.model_args))


def load_model(path: str | Path, name: str | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the network of a model file: a ``umsi-train`` checkpoint, ``umsi-convert-keras`` output,
    :func:`save_model` output or the released Keras ``.h5`` (converted in memory). Its card
    (:func:`read_card`) names the architecture, classes, input size and preprocessing; ``name`` replaces its
    display name. Loads with ``torch.load(weights_only=True)``. Raises :class:`MissingPathError` or
    :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"checkpoint {path} does not exist: check the path (a run's checkpoints/*.ckpt)")
    if path.suffix.lower() in KERAS_SUFFIXES:
        from umsi.official.convert import checkpoint_from_keras

        log.warning("%s: converting the Keras file in memory (default class order; see umsi-convert-keras)", path)
        state = checkpoint_from_keras(path)
    else:
        state = read_checkpoint(path)
    if "state_dict" not in state:
        raise CheckpointError(
            f"{path} is not a umsi checkpoint (no state_dict): use a checkpoint written by umsi-train or "
            "umsi-convert-keras"
        )
    card = read_card(state, path)
    model = build_from_card(card)
    weights = {k.removeprefix("model."): v for k, v in state["state_dict"].items() if k.startswith("model.")}
    load_matching(model, weights, str(path), "The file's weights do not fit the architecture its card names.")
    if not card.class_names:
        card = card.replace(class_names=tuple(_generic_names(model)))
    return LoadedModel(model=model.eval().to(device), card=card, path=path, name=name or card.name)


class ExportedModule(nn.Module):
    """An exported network (:class:`~umsi.checkpoints.exported.ExportedNetwork`: ONNX, int8 ONNX, TorchScript) as
    the module a :class:`LoadedModel` holds: ``forward(image (B, 3, H, W)) → UMSIOutput`` on the CPU. It has one
    empty parameter so that ``next(model.parameters()).device`` names the CPU as for a PyTorch network."""

    def __init__(self, network: Any) -> None:
        super().__init__()
        self.network = network
        self.anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def forward(self, image: torch.Tensor) -> Any:
        return self.network(image.cpu())


def load_exported_model(path: str | Path, name: str | None = None) -> LoadedModel:
    """An ``umsi-export`` file (``.onnx``, ``.ts``) as a :class:`LoadedModel` on the CPU, its card from the file
    (what ``umsi-eval`` scores like a checkpoint). Raises :class:`MissingPathError` or :class:`CheckpointError`
    naming the file."""
    from umsi.checkpoints.exported import load_exported

    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"exported model {path} does not exist: check the path")
    network = load_exported(path)
    card = network.card
    return LoadedModel(model=ExportedModule(network).eval(), card=card, path=path, name=name or card.name)


def _default_name(path: Path) -> str:
    """``<run>/<stage>/checkpoints/x.ckpt`` → ``<run time>/<stage>``; else the file stem."""
    return runs.checkpoint_label(path)


def find_latest_checkpoint(outputs: str | Path) -> Path:
    """The final model of the newest ``umsi-train`` run under ``outputs`` (``<date>/<time>/summary.json``):
    the best finetuned checkpoint of the newest pipeline run (what ``make train`` runs), or, when there is no
    pipeline run, the evaluated checkpoint of the newest single-stage run."""
    return runs.latest_checkpoint(outputs)


def model_file(path: str | Path, key: str = "ckpt") -> Path:
    """What a tool's model argument ``key`` names: a file as given; a run or stage folder of ``umsi-train`` → the
    best checkpoint of its last stage (or of that stage), found through :mod:`umsi.runs`, and said in the log.

    Raises :class:`~umsi.runs.NotARunError` for a folder that is not a run (naming what was expected) and
    :class:`~umsi.errors.MissingPathError` for a path that does not exist."""
    path = Path(str(path)).expanduser()
    if path.is_dir():
        try:
            chosen = runs.best_checkpoint(path)
        except runs.NotARunError as err:
            raise runs.NotARunError(f"{key}={path}: {err}") from None
        log.info("%s=%s is a run folder: using its checkpoint %s", key, path, chosen)
        return chosen
    if not path.is_file():
        raise MissingPathError(
            f"{key}={path}: no such file (a checkpoint, converted weights or an exported model, or a run folder)"
        )
    return path


def resolve_checkpoint(cfg: Any) -> Path:
    """``cfg.ckpt``: a path, a run or stage folder (:func:`model_file`), or ``latest`` (the newest ``umsi-train``
    run under ``cfg.outputs_dir``, read only then). Raises ``MissingPathError`` with a message naming the ``ckpt``
    key."""
    ckpt = cfg.ckpt
    if ckpt is None or str(ckpt) == "":
        raise MissingPathError("ckpt is not set: pass ckpt=path/to/model.ckpt, ckpt=<run folder> or ckpt=latest")
    if str(ckpt) == "latest":
        try:
            return find_latest_checkpoint(cfg.outputs_dir)
        except FileNotFoundError:
            raise MissingPathError(
                f"ckpt=latest: no finished umsi-train run with a checkpoint under {cfg.outputs_dir} (outputs_dir); "
                "run `make train` first or pass ckpt=path/to/model.ckpt"
            ) from None
    return model_file(ckpt, "ckpt")
