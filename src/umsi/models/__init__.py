"""Network modules: encoder, heads and the composed UMSI model."""

from umsi.models.encoder import PretrainedWeightsError, build_encoder
from umsi.models.umsi import UMSI, UMSIOutput, count_parameters

__all__ = ["UMSI", "PretrainedWeightsError", "UMSIOutput", "build_encoder", "count_parameters"]
