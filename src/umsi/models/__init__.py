"""Network modules: encoder, heads and the composed UMSI model."""

from umsi.models.encoder import PretrainedWeightsError, build_encoder, fetch_pretrained_weights
from umsi.models.umsi import UMSI, UMSIOutput, count_parameters, dropout_sites, without_encoder_init

__all__ = [
    "UMSI",
    "PretrainedWeightsError",
    "UMSIOutput",
    "build_encoder",
    "count_parameters",
    "dropout_sites",
    "fetch_pretrained_weights",
    "without_encoder_init",
]
