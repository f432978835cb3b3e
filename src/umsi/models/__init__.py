"""Network modules (encoder, heads, the composed UMSI model), the registry of architectures by name and the model
card. Names load on first use (PEP 562), so ``umsi.models.card`` (used by the data layer) imports no torch / timm."""

from __future__ import annotations

from umsi.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "umsi.models.umsi": ("UMSI", "UMSIOutput", "count_parameters", "dropout_sites", "without_encoder_init"),
        "umsi.models.encoder": ("PretrainedWeightsError", "build_encoder", "fetch_pretrained_weights"),
        "umsi.models.registry": ("build_model", "create_model", "list_models", "register_model"),
        "umsi.models.card": ("ModelCard", "Preprocessing"),
    },
)
