"""Network modules (encoder, heads, the composed UMSI model), the registry of architectures by name and the model
card. Names load on first use (PEP 562), so ``umsi.models.card`` (used by the data layer) imports no torch / timm."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "UMSI": "umsi.models.umsi",
    "UMSIOutput": "umsi.models.umsi",
    "count_parameters": "umsi.models.umsi",
    "dropout_sites": "umsi.models.umsi",
    "without_encoder_init": "umsi.models.umsi",
    "PretrainedWeightsError": "umsi.models.encoder",
    "build_encoder": "umsi.models.encoder",
    "fetch_pretrained_weights": "umsi.models.encoder",
    "build_model": "umsi.models.registry",
    "create_model": "umsi.models.registry",
    "list_models": "umsi.models.registry",
    "register_model": "umsi.models.registry",
    "ModelCard": "umsi.models.card",
    "Preprocessing": "umsi.models.card",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'umsi.models' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
