"""umsi models inside pysaliency (``pip install umsi[pysaliency]``).

Following ``pysaliency/external_models/deepgaze.py``: a ``SaliencyMapModel`` whose ``_saliency_map`` is the
model's heatmap at the stimulus's own size, and a probabilistic ``Model`` whose ``_log_density`` is the
normalised log-density (``Prediction.log_density``), so pysaliency's AUC, NSS, CC, KL, SIM and information gain
score a umsi model next to DeepGaze::

    import pysaliency, umsi
    from umsi.integrations.pysaliency import UMSIModel, file_stimuli
    model = UMSIModel(umsi.load("model.ckpt"))
    model.information_gain(file_stimuli(["a.jpg", "b.png"]), fixations, pysaliency.UniformModel())

Stimuli are pysaliency's (H, W, 3) RGB arrays; they reach the predictor as arrays (RGB, like PIL hands them out).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from umsi.errors import UserError

try:
    with warnings.catch_warnings():  # pysaliency 0.2.22 imports the deprecated pkg_resources
        warnings.simplefilter("ignore")
        import pysaliency
        from pysaliency.datasets import as_stimulus
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise UserError(
        f"umsi.integrations.pysaliency needs pysaliency ({error}): pip install 'umsi[pysaliency]'"
    ) from None

from umsi.inference.predictor import Prediction, Predictor


class _UMSIPredictions:
    """What both adapters hold: the predictor and how it is called (``blur_sigma`` in output pixels and
    ``calibration``: none | auto | a domain, as for ``Predictor.predict``)."""

    def __init__(
        self, predictor: Predictor, blur_sigma: float | None = None, calibration: str = "none", **kwargs: object
    ) -> None:
        super().__init__(**kwargs)
        self.predictor, self.blur_sigma, self.calibration = predictor, blur_sigma, calibration

    def _prediction(self, stimulus: object) -> Prediction:
        data = np.asarray(as_stimulus(stimulus).stimulus_data)
        return self.predictor.predict(data, blur_sigma=self.blur_sigma, calibration=self.calibration)


class UMSISaliencyMapModel(_UMSIPredictions, pysaliency.SaliencyMapModel):
    """A umsi model as a pysaliency saliency-map model: (H, W) float32 heatmap in [0, 1] per stimulus (pysaliency
    caches one map per stimulus with ``caching=True``)."""

    def _saliency_map(self, stimulus: object) -> np.ndarray:
        return self._prediction(stimulus).heatmap


class UMSIModel(_UMSIPredictions, pysaliency.Model):
    """A umsi model as a probabilistic pysaliency model: (H, W) float64 log-density per stimulus, logsumexp 0
    (``Prediction.log_density``): the calibrated map when ``calibration`` names one, else the map normalised."""

    def _log_density(self, stimulus: object) -> np.ndarray:
        return self._prediction(stimulus).log_density()


def file_stimuli(paths: Sequence[str | Path]) -> pysaliency.FileStimuli:
    """Image files as pysaliency stimuli (loaded lazily by pysaliency, RGB). Raises ``UserError`` naming a file
    that does not exist."""
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise UserError(f"stimulus files not found: {', '.join(missing)}")
    return pysaliency.FileStimuli([str(p) for p in paths])
