"""The model card: what a saved network needs besides its weights, stored inside every model file.

A :class:`ModelCard` is a small JSON-serialisable record (after timm's ``PretrainedCfg`` and the ``config.json`` of
segmentation_models.pytorch's ``save_pretrained``): the registered architecture name and its constructor arguments
(:mod:`umsi.models.registry`), the class names in the classifier's output order, the network input size, the
exact preprocessing (:class:`Preprocessing`), the output scale, where the weights come from, and the umsi
version that wrote it. Every producer writes it (training checkpoints, ``umsi-convert-keras``,
``checkpoints.loading.save_model``, ONNX / TorchScript exports) and one loader reads it
(``umsi.checkpoints.loading``), so a model file copied anywhere describes itself.

This module owns the defaults every model file falls back to (:data:`DEFAULT_INPUT_SIZE`,
:data:`DEFAULT_OUTPUT_SCALE`, the ``official`` preprocessing) and the named preprocessing schemes
(:func:`register_preprocessing`, :func:`get_preprocessing`). It imports nothing heavier than the standard library.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from umsi.errors import ConfigError

# The network input (rows, cols) in pixels when nothing else says: the released model's 240×320 (umsi-reference §3).
DEFAULT_INPUT_SIZE: tuple[int, int] = (240, 320)
# Saliency map size / input size of the released decoder.
DEFAULT_OUTPUT_SCALE = 2.0
# Where the card travels: a checkpoint dict's key, the ONNX metadata_props key, the TorchScript extra file's stem.
CARD_KEY = "umsi_card"
# Bumped when a field changes meaning; readers accept this version and older.
CARD_FORMAT = 1
CHANNEL_ORDERS = ("BGR", "RGB")
# Where the weights came from: a training run's stage, the released Keras file, an export of another file, or
# checkpoints.loading.save_model (tests, benchmarks, demos).
SOURCE_KINDS = ("training", "converted", "exported", "saved")

# Caffe/VGG means of the B, G, R channels; the official model subtracts them with no scaling (umsi-reference §3).
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class Preprocessing:
    """How an 8-bit image becomes the network input: ``x = (pixels[channel_order] / pixel_scale − mean) / std``
    per channel, where ``pixels`` are the 0–255 values in ``channel_order`` (``BGR`` or ``RGB``), ``pixel_scale``
    is 1 (values stay 0–255) or 255 (values in [0, 1]) and ``mean`` / ``std`` are given per channel in that order
    and on that scale. ``name`` is the scheme's registered name (``data.preprocessing``)."""

    name: str
    channel_order: str
    pixel_scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        if self.channel_order not in CHANNEL_ORDERS:
            raise ConfigError(f"preprocessing {self.name!r}: channel_order={self.channel_order!r}; use BGR or RGB")
        for key in ("mean", "std"):
            values = tuple(float(v) for v in getattr(self, key))
            if len(values) != 3 or not all(math.isfinite(v) for v in values):
                raise ConfigError(f"preprocessing {self.name!r}: {key} must be 3 finite numbers, got {list(values)}")
            object.__setattr__(self, key, values)
        if min(self.std) <= 0 or not self.pixel_scale > 0:
            raise ConfigError(f"preprocessing {self.name!r}: std and pixel_scale must be positive")
        object.__setattr__(self, "pixel_scale", float(self.pixel_scale))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: {name, channel_order, pixel_scale, mean: [3], std: [3]}."""
        return {**dataclasses.asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Preprocessing:
        """Inverse of :meth:`to_dict`; ``ConfigError`` naming a missing or unknown field."""
        fields = {f.name for f in dataclasses.fields(cls)}
        if set(values) != fields:
            raise ConfigError(
                f"preprocessing {dict(values)}: expected exactly the fields {sorted(fields)} "
                f"(missing {sorted(fields - set(values))}, unknown {sorted(set(values) - fields)})"
            )
        return cls(**values)


_PREPROCESSING: dict[str, Preprocessing] = {}


def register_preprocessing(scheme: Preprocessing) -> Preprocessing:
    """Make ``scheme`` available by its name (``data.preprocessing=<name>``, a card's default). Registering the
    same name twice with other values raises ``ConfigError``; the same values again are accepted."""
    known = _PREPROCESSING.get(scheme.name)
    if known is not None and known != scheme:
        raise ConfigError(f"preprocessing {scheme.name!r} is already registered with other values: {known}")
    _PREPROCESSING[scheme.name] = scheme
    return scheme


def preprocessing_names() -> list[str]:
    """The registered preprocessing scheme names, sorted."""
    return sorted(_PREPROCESSING)


def get_preprocessing(spec: str | Mapping[str, Any] | Preprocessing) -> Preprocessing:
    """A :class:`Preprocessing` from a registered name (``"official"``, ``"timm"`` …), its dict form, or itself.
    Raises ``ConfigError`` naming ``data.preprocessing`` and the registered names for an unknown name."""
    if isinstance(spec, Preprocessing):
        return spec
    if isinstance(spec, Mapping):
        return Preprocessing.from_dict(spec)
    scheme = _PREPROCESSING.get(str(spec))
    if scheme is None:
        raise ConfigError(f"data.preprocessing={spec!r}: choose one of {preprocessing_names()}")
    return scheme


# the released model: BGR 0–255 minus the Caffe means, no scaling (range about [−124, 152])
OFFICIAL_PREPROCESSING = register_preprocessing(Preprocessing("official", "BGR", 1.0, CAFFE_BGR_MEAN, (1.0, 1.0, 1.0)))
# timm's Xception weights: RGB in [0, 1], mean = std = 0.5 (range [−1, 1])
TIMM_PREPROCESSING = register_preprocessing(Preprocessing("timm", "RGB", 255.0, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
# most timm ImageNet encoders (ConvNeXt, EfficientNet, ResNet, DeiT): RGB in [0, 1], timm's IMAGENET_DEFAULT_MEAN/STD
IMAGENET_PREPROCESSING = register_preprocessing(
    Preprocessing("imagenet", "RGB", 255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
)


def umsi_version() -> str:
    """The installed umsi package's version (``"unknown"`` when it is run from a source tree without metadata)."""
    try:
        return metadata.version("umsi")
    except metadata.PackageNotFoundError:
        return "unknown"


def _size(value: Sequence[int], key: str) -> tuple[int, int]:
    size = tuple(int(v) for v in value)
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"{key} must be (rows, cols) of positive integers, got {list(value)}")
    return size  # type: ignore[return-value]


@dataclass(frozen=True)
class ModelCard:
    """What a model file says about its network (JSON form: :meth:`to_dict` / :meth:`from_dict`).

    - ``architecture``: a name registered in :mod:`umsi.models.registry` (``umsi``, ``umsi_official`` …), never an
      import path; ``model_args``: the keyword arguments it is built with (JSON values; the encoder's own
      ImageNet initialisation switched off, the weights come with the file).
    - ``class_names``: one per classifier output, in output order.
    - ``input_size``: the network input (rows, cols) in pixels that images are letterboxed to.
    - ``preprocessing``: the exact normalisation (:class:`Preprocessing`).
    - ``output_scale``: saliency map size / input size.
    - ``name``: the display name (tables, ``/health``).
    - ``source``: ``{"kind": "training", "run", "stage"}``, ``{"kind": "converted", "file", "sha256"}``,
      ``{"kind": "exported", "file", "from": <the source's own source>}`` or ``{"kind": "saved"}``.
    - ``umsi_version``: the version that wrote it; ``format``: :data:`CARD_FORMAT`.
    - ``calibration``: per domain (a class name), the post-processing parameters ``umsi-calibrate`` fitted
      (:class:`umsi.calibration.Calibration` as a dict); stored only when there is one, so files without stay
      readable by umsi versions before it.
    - ``quantization``: only for a low-precision file (``umsi-export quantize=int8``), else None and not stored:
      ``{"precision", "method", "calibration": {"folder", "n", "files"}, "accuracy_check": <the report of
      umsi.inference.quantize.accuracy_report against fp32>}``.
    """

    architecture: str
    model_args: dict[str, Any] = field(default_factory=dict)
    class_names: tuple[str, ...] = ()
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE
    preprocessing: Preprocessing = OFFICIAL_PREPROCESSING
    output_scale: float = DEFAULT_OUTPUT_SCALE
    name: str = ""
    source: dict[str, Any] = field(default_factory=lambda: {"kind": "saved"})
    umsi_version: str = field(default_factory=umsi_version)
    format: int = CARD_FORMAT
    calibration: dict[str, dict[str, Any]] = field(default_factory=dict)
    quantization: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if "." in self.architecture or not self.architecture:
            raise ConfigError(
                f"model card architecture={self.architecture!r}: give a registered model name (umsi, "
                "umsi_official …), not an import path"
            )
        object.__setattr__(self, "input_size", _size(self.input_size, "model card input_size"))
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        object.__setattr__(self, "preprocessing", get_preprocessing(self.preprocessing))
        object.__setattr__(self, "output_scale", float(self.output_scale))
        object.__setattr__(self, "name", self.name or self.architecture)
        if self.source.get("kind") not in SOURCE_KINDS:
            raise ConfigError(f"model card source={self.source}: its kind must be one of {SOURCE_KINDS}")
        json.dumps(self.to_dict())  # fails here, not when a file is written, for a value JSON cannot hold

    def replace(self, **changes: Any) -> ModelCard:
        """A copy with ``changes`` (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form stored in model files (plain dicts, lists, strings and numbers only, so it loads
        with ``torch.load(weights_only=True)``)."""
        return {
            "format": self.format,
            "architecture": self.architecture,
            "model_args": json.loads(json.dumps(self.model_args)),
            "class_names": list(self.class_names),
            "input_size": list(self.input_size),
            "preprocessing": self.preprocessing.to_dict(),
            "output_scale": self.output_scale,
            "name": self.name,
            "source": json.loads(json.dumps(self.source)),
            "umsi_version": self.umsi_version,
            **({"quantization": json.loads(json.dumps(self.quantization))} if self.quantization else {}),
            **({"calibration": json.loads(json.dumps(self.calibration))} if self.calibration else {}),
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as one JSON line (keys sorted, so equal cards give equal text)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelCard:
        """Inverse of :meth:`to_dict`. Raises ``ConfigError`` for a card of a newer format, a missing or unknown
        field, or a bad value (the caller adds the file's name)."""
        values = dict(values)
        version = int(values.get("format", CARD_FORMAT))
        if version > CARD_FORMAT:
            raise ConfigError(
                f"model card format {version} is newer than this umsi reads ({CARD_FORMAT}); upgrade umsi"
            )
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown, missing = set(values) - fields, {"architecture", "model_args", "class_names"} - set(values)
        if unknown or missing:
            raise ConfigError(f"model card: unknown fields {sorted(unknown)}, missing fields {sorted(missing)}")
        values["preprocessing"] = get_preprocessing(values.get("preprocessing", OFFICIAL_PREPROCESSING))
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))
