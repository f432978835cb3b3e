"""Architectures by registered name (timm-style): ``create_model("umsi_official")``.

A name maps to a factory (keyword arguments → ``nn.Module``) and a default :class:`~umsi.models.card.ModelCard`
(input size, preprocessing, output scale, class names for a network built with no other information). Configs
(``conf/model/*.yaml``: ``architecture: <name>`` plus keyword arguments) and model cards name architectures this
way, so moving or renaming a Python class breaks no saved file. Checkpoints written before the registry stored an
import path (``_target_: umsi.models.UMSI``); :func:`model_config` maps the known ones to their names.

Add an architecture with :func:`register_model` on a factory in a module imported by :func:`_builtin_modules`'
list (or before :func:`create_model` is called)::

    @register_model(preprocessing="timm")
    def umsi_my_encoder(**kwargs: Any) -> UMSI:
        return UMSI(**{"encoder": "my_encoder", **kwargs})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from umsi.errors import ConfigError
from umsi.models.card import (
    DEFAULT_INPUT_SIZE,
    DEFAULT_OUTPUT_SCALE,
    ModelCard,
    Preprocessing,
    get_preprocessing,
)

# The config key naming the architecture (conf/model/*.yaml, a checkpoint's model hyper-parameters).
ARCHITECTURE_KEY = "architecture"
# Import paths stored by checkpoints written before the registry, and the name each now has.
LEGACY_TARGETS = {"umsi.models.UMSI": "umsi", "umsi.models.umsi.UMSI": "umsi"}
# Modules whose import registers the built-in architectures (they import this module, so it cannot import them).
BUILTIN_MODULES = ("umsi.models.umsi",)


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture: ``factory(**kwargs)`` builds it; ``card`` is its default card."""

    name: str
    factory: Callable[..., nn.Module]
    card: ModelCard


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str | None = None,
    *,
    input_size: Sequence[int] = DEFAULT_INPUT_SIZE,
    preprocessing: str | Preprocessing = "official",
    output_scale: float = DEFAULT_OUTPUT_SCALE,
    class_names: Sequence[str] = (),
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a factory under ``name`` (default: the function's name) with its default card.
    Registering a taken name raises ``ConfigError``."""

    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or factory.__name__
        if key in _MODELS and _MODELS[key].factory is not factory:
            raise ConfigError(f"model name {key!r} is already registered (by {_MODELS[key].factory.__module__})")
        card = ModelCard(
            architecture=key,
            class_names=tuple(class_names),
            input_size=tuple(input_size),  # type: ignore[arg-type]
            preprocessing=get_preprocessing(preprocessing),
            output_scale=output_scale,
        )
        _MODELS[key] = ModelEntry(key, factory, card)
        return factory

    return decorate


def _load_builtin() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def list_models() -> list[str]:
    """The registered architecture names, sorted."""
    _load_builtin()
    return sorted(_MODELS)


def model_entry(name: str) -> ModelEntry:
    """The registration of ``name``; ``ConfigError`` naming ``model.architecture`` and the registered names."""
    _load_builtin()
    entry = _MODELS.get(str(name))
    if entry is None:
        raise ConfigError(f"model.architecture={name!r} is not a registered model; choose one of {list_models()}")
    return entry


def default_card(name: str) -> ModelCard:
    """The default card of a registered architecture (its input size, preprocessing, output scale)."""
    return model_entry(name).card


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered architecture ``name`` with ``kwargs`` (its constructor arguments, e.g.
    ``create_model("umsi", num_classes=5)``). ``ConfigError`` for an unknown name."""
    return model_entry(name).factory(**kwargs)


def model_config(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(registered name, constructor keyword arguments) of a model config: ``{"architecture": name, **kwargs}``
    (conf/model, cards) or an old checkpoint's ``{"_target_": import path, **kwargs}``. ``ConfigError`` for an
    import path that names no registered architecture."""
    kwargs = dict(config)
    target = kwargs.pop("_target_", None)
    name = kwargs.pop(ARCHITECTURE_KEY, None)
    if name is None and target is not None:
        name = LEGACY_TARGETS.get(str(target))
        if name is None:
            raise ConfigError(
                f"model _target_={target!r} names no registered architecture; give model.architecture as one of "
                f"{list_models()}"
            )
    if name is None:
        raise ConfigError(f"the model config has no {ARCHITECTURE_KEY}: give one of {list_models()}")
    model_entry(name)
    return str(name), kwargs


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """The network of a model config (see :func:`model_config`)."""
    name, kwargs = model_config(config)
    return create_model(name, **kwargs)
