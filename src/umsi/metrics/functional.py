"""Per-image saliency measures on batched tensors: the public face of :mod:`umsi.metrics` (one import for callers).

Shapes: maps are (B, H, W) or (B, 1, H, W); every measure returns a (B,) tensor (one value per image).

Each job has its own module, re-exported here: :mod:`~umsi.metrics.loss_terms` (loss building blocks),
:mod:`~umsi.metrics.classification`, :mod:`~umsi.metrics.maps` (baseline and fixation maps),
:mod:`~umsi.metrics.evaluation` (the evaluation metrics), with :mod:`~umsi.metrics.sums` (float64 block sums) and
:mod:`~umsi.metrics.threads` (the CPU thread engine) under them. The Gaussian blur of predictions is post-processing:
:func:`umsi.data.postprocess.gaussian_blur`. The two groups of measures:

* **Loss building blocks** (differentiable, dtype-preserving, used by :mod:`umsi.losses`): :func:`kl_divergence`,
  :func:`correlation_coefficient`, :func:`normalized_scanpath_saliency`, :func:`mean_squared_error`. They follow the
  official UMSI Keras losses (umsi-reference §4): ε = 1e-7 (Keras ``K.epsilon()``), the prediction divided by its
  maximum before KL and NSS, KL(target ‖ prediction) in nats.
* **Evaluation metrics** (not differentiable; float64 arithmetic on the maps' own values): :func:`cc`, :func:`kl`,
  :func:`sim`, :func:`r2`, :func:`rmse`, :func:`nss`, :func:`auc_judd`, :func:`auc_borji`, :func:`sauc`,
  :func:`info_gain`. They equal the plain transcription in :mod:`umsi.metrics.reference` within 1e-6 relative (the
  :mod:`~umsi.metrics.sums` says how they are computed fast). Each takes a keyword ``convention``:

  - ``"umsi"`` (default): the official UMSI evaluation (MDS ``src/eval.py``, umsi-reference §5). The prediction is
    min–max scaled to [0, 1] first; a continuous target map whose maximum exceeds 1 is divided by 255.
  - ``"mit"``: the MIT saliency benchmark MATLAB code (``cvzoya/saliency/code_forMetrics``), eps = 2.2204e-16
    (MATLAB ``eps``), without any resizing (maps must already have the fixation map's size).

  Where one convention has no definition of a metric, both use the other's (said in each docstring).

Fixations are given either as maps (B, H, W) / (B, 1, H, W) or as a list of B point arrays/tensors of shape (N_i, 2)
holding 0-based (x, y) pixel coordinates (truncated to int, as pysaliency's ``x_int``; out-of-range points raise).
Fixation weighting, shared by :func:`nss` and :func:`info_gain`:

- ``"mit"``: binary, pixels with F > 0 (duplicates at one pixel collapse into one, as in the MIT code);
- ``"umsi"``: F is used as weights, Σ F·v / Σ F over the pixels with F > 0 (``nss_npy``; a fixation map holds
  non-negative counts or indicators); a point list becomes a **count** map, so duplicate fixations count once each —
  the per-fixation average that pysaliency uses (``average='fixation'``).

The AUC family always uses the binary set of fixated pixels (MIT). pysaliency instead evaluates every fixation
*coordinate* (duplicates count), so it agrees with the binary conventions only for duplicate-free fixations.

No measure returns NaN or ±inf: degenerate inputs (constant or all-zero maps, images without fixations) have the
defined values stated in each docstring. Two rules recur:

- *constant map*: min–max scaling maps it to all zeros; NSS and CC are 0 for a constant map and for a near-constant
  one, whose standard deviation is at most :data:`CONSTANT_RTOL` (1e-9) of its root mean square, in every dtype;
- *distribution*: after the convention's scaling, a map with zero total mass is taken as the uniform distribution
  (pysaliency's ``convert_saliency_map_to_density`` rule; MATLAB gives NaN there).
"""

from __future__ import annotations

from umsi.metrics.classification import accuracy, per_class_accuracy
from umsi.metrics.evaluation import (
    CONVENTION_FREE,
    CONVENTIONS,
    MATLAB_EPS,
    auc_borji,
    auc_judd,
    cc,
    info_gain,
    kl,
    nss,
    r2,
    rmse,
    sauc,
    sim,
)
from umsi.metrics.loss_terms import (
    EPS,
    correlation_coefficient,
    evaluation_kl,
    kl_divergence,
    max_normalize,
    mean_squared_error,
    minmax_normalize,
    normalized_scanpath_saliency,
    sum_normalize,
)

# the helpers umsi.metrics.reference (the frozen oracle) imports from here
from umsi.metrics.loss_terms import _flat as _flat
from umsi.metrics.loss_terms import _pearson as _pearson
from umsi.metrics.loss_terms import _safe_divide as _safe_divide
from umsi.metrics.loss_terms import _zscore as _zscore
from umsi.metrics.maps import Fixations, center_bias_map, fixations_to_map, other_image_fixations
from umsi.metrics.maps import _batch_maps as _batch_maps
from umsi.metrics.sums import CONSTANT_RTOL

__all__ = [
    "CONSTANT_RTOL",
    "CONVENTIONS",
    "CONVENTION_FREE",
    "EPS",
    "MATLAB_EPS",
    "Fixations",
    "accuracy",
    "auc_borji",
    "auc_judd",
    "cc",
    "center_bias_map",
    "correlation_coefficient",
    "evaluation_kl",
    "fixations_to_map",
    "info_gain",
    "kl",
    "kl_divergence",
    "max_normalize",
    "mean_squared_error",
    "minmax_normalize",
    "normalized_scanpath_saliency",
    "nss",
    "other_image_fixations",
    "per_class_accuracy",
    "r2",
    "rmse",
    "sauc",
    "sim",
    "sum_normalize",
]
