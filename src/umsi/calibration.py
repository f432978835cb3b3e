"""Per-domain calibration of saliency maps: a blur, a centre-bias mixing weight and an exponent, fitted with the
network frozen.

The calibrated density of a map ``m`` (H, W), non-negative, at the image's own size is (DeepGaze MSDB's idea of a
few per-dataset post-processing parameters, `../shared/docs/beyond-the-paper.md` §3)::

    b = blur(m, σ · max(H, W))            # σ: a fraction of the longer side, so one value serves every image size
    q = (1 − w) · b / Σ b + w · c / Σ c   # c: the evaluation's centre-bias map (metrics.center_bias_map)
    p = q^γ / Σ q^γ                       # γ > 1 sharpens, γ < 1 flattens

``p`` sums to 1; its logarithm is the model's log-density (logsumexp 0), what the MIT/Tübingen benchmark and
pysaliency's probabilistic models expect. With fixations the parameters maximise the mean log-likelihood of the
fixated pixels; with maps only they minimise KL(map ‖ p). Both run on copies of the maps shrunk to a small working
size (the parameters are size-free), with L-BFGS on (log σ, logit w, log γ).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from umsi.metrics.functional import center_bias_map

# A map's density is floored at this fraction of the uniform density before its log is taken, so a pixel the model
# gives zero keeps a finite log-likelihood (the benchmark rejects -inf).
DENSITY_FLOOR = 1e-6
WORKING_SIZE = 64  # longer side (px) of the copies the parameters are fitted on
_TRUNCATE = 4.0  # blur kernel radius in σ, as scipy.ndimage.gaussian_filter


@dataclass(frozen=True)
class Calibration:
    """One domain's post-processing parameters.

    sigma: blur std as a fraction of the map's longer side (0 = no blur); center_bias: mixing weight in [0, 1];
    exponent: γ > 0. ``n_images``/``images`` name what it was fitted on; ``scores`` holds the held-out before/after
    values (``{"before": {...}, "after": {...}, "n": int}``); ``objective`` is ``"fixations"`` or ``"maps"``.
    """

    sigma: float = 0.0
    center_bias: float = 0.0
    exponent: float = 1.0
    objective: str = "maps"
    n_images: int = 0
    images: tuple[str, ...] = ()
    scores: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.sigma >= 0 and 0 <= self.center_bias <= 1 and self.exponent > 0):
            raise ValueError(
                f"calibration sigma={self.sigma}, center_bias={self.center_bias}, exponent={self.exponent}: "
                "need sigma >= 0, 0 <= center_bias <= 1 and exponent > 0"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (a model card's ``calibration.<domain>``)."""
        out = asdict(self)
        out["images"] = list(self.images)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Calibration:
        known = {k: values[k] for k in cls.__dataclass_fields__ if k in values}
        if "images" in known:
            known["images"] = tuple(known["images"])
        return cls(**known)


def mean_calibration(calibrations: Sequence[Calibration]) -> Calibration:
    """The fallback for a domain without its own: the mean of the fitted parameters (as DeepGaze MSDB does for an
    unknown dataset). Raises ``ValueError`` for an empty sequence."""
    if not calibrations:
        raise ValueError("no calibration to average: fit one with umsi-calibrate first")
    return Calibration(
        sigma=float(np.mean([c.sigma for c in calibrations])),
        center_bias=float(np.mean([c.center_bias for c in calibrations])),
        exponent=float(np.mean([c.exponent for c in calibrations])),
        objective="mean",
        n_images=sum(c.n_images for c in calibrations),
    )


def choose_calibration(calibrations: dict[str, Calibration], choice: str, label: str | None) -> Calibration | None:
    """What ``calibration=<choice>`` means for an image whose predicted class is ``label``: ``none`` → None; a domain
    → its calibration; ``auto`` → the calibration of ``label``, else the mean of ``calibrations`` (None while
    ``label`` is None: only the choice is checked). Raises ``ValueError`` for a domain without a calibration, or
    ``auto`` with none fitted."""
    if choice == "none":
        return None
    if choice == "auto":
        if not calibrations:
            raise ValueError("calibration=auto: this model has no calibration; fit one with umsi-calibrate")
        if label is None:
            return None
        return calibrations.get(label) or mean_calibration(list(calibrations.values()))
    if choice not in calibrations:
        known = ", ".join(sorted(calibrations)) or "none fitted (umsi-calibrate)"
        raise ValueError(f"calibration={choice!r}: choose none, auto or one of this model's domains ({known})")
    return calibrations[choice]


def card_calibrations(stored: dict[str, dict[str, Any]]) -> dict[str, Calibration]:
    """A model card's ``calibration`` (domain → dict) as :class:`Calibration` objects."""
    return {domain: Calibration.from_dict(values) for domain, values in stored.items()}


# ------------------------------------------------------------------------------------------------ the transform


def _reflect_blur_matrix(size: int, sigma_px: torch.Tensor) -> torch.Tensor:
    """(size, size) matrix K with K @ x = x blurred along one axis (half-sample symmetric reflection at the borders,
    as ``scipy.ndimage.gaussian_filter(mode="reflect")``); differentiable in ``sigma_px`` (a 0-d tensor, px)."""
    radius = max(1, min(math.ceil(_TRUNCATE * float(sigma_px.detach())), 2 * size - 1))
    positions = torch.arange(-radius, size + radius, dtype=sigma_px.dtype)
    rows = torch.arange(size, dtype=sigma_px.dtype)
    offsets = rows[:, None] - positions[None, :]
    weights = torch.exp(-0.5 * (offsets / sigma_px) ** 2) * (offsets.abs() <= radius)
    weights = weights / weights.sum(dim=1, keepdim=True)
    period = torch.arange(-radius, size + radius) % (2 * size)
    source = torch.where(period >= size, 2 * size - 1 - period, period)
    return weights @ F.one_hot(source, size).to(sigma_px.dtype)


def _log_density(
    maps: torch.Tensor, sigma: torch.Tensor, weight: torch.Tensor, exponent: torch.Tensor, prior: torch.Tensor
) -> torch.Tensor:
    """(B, H, W) non-negative maps → (B, H, W) log-densities (logsumexp 0 per map); differentiable in the
    parameters (0-d tensors). ``prior``: the (H, W) centre-bias map."""
    height, width = maps.shape[-2:]
    blurred = maps
    if float(sigma.detach()) > 0:
        sigma_px = sigma * max(height, width)
        blurred = _reflect_blur_matrix(height, sigma_px) @ maps @ _reflect_blur_matrix(width, sigma_px).T
    total = blurred.sum(dim=(-2, -1), keepdim=True)
    uniform = torch.full_like(blurred, 1.0 / (height * width))
    density = torch.where(total > 0, blurred / total.clamp_min(1e-30), uniform)
    mixed = (1 - weight) * density + weight * prior / prior.sum()
    log_mixed = torch.log(mixed.clamp_min(DENSITY_FLOOR / (height * width)))
    powered = exponent * log_mixed
    return powered - torch.logsumexp(powered.flatten(-2), dim=-1)[..., None, None]


def log_density(saliency: np.ndarray | torch.Tensor, calibration: Calibration | None = None) -> np.ndarray:
    """A saliency map (H, W), any non-negative scale, → its log-density (H, W) float64 at the same size, natural
    log, logsumexp 0 (within float rounding). ``calibration=None`` normalises the map as it is (a floor of
    ``DENSITY_FLOOR`` × uniform keeps every log finite). Raises ``ValueError`` for a map that is not 2-D."""
    maps = torch.as_tensor(np.asarray(saliency), dtype=torch.float64)
    if maps.dim() != 2:
        raise ValueError(f"expected one (H, W) saliency map, got shape {tuple(maps.shape)}")
    cal = calibration or Calibration()
    prior = center_bias_map(*maps.shape).double()
    params = (torch.tensor(cal.sigma, dtype=torch.float64), torch.tensor(cal.center_bias, dtype=torch.float64))
    out = _log_density(maps.clamp_min(0)[None], *params, torch.tensor(cal.exponent, dtype=torch.float64), prior)
    return out[0].numpy()


def apply_calibration(saliency: np.ndarray, calibration: Calibration | None) -> np.ndarray:
    """A saliency map (H, W) → the calibrated map (H, W) float32 in [0, 1] (the density scaled to max 1);
    ``None`` returns the map unchanged."""
    if calibration is None:
        return saliency
    density = np.exp(log_density(saliency, calibration))
    return (density / density.max()).astype(np.float32)


# ------------------------------------------------------------------------------------------------------ fitting


def _shrink(array: np.ndarray, size: int) -> torch.Tensor:
    """(H, W) → (h, w) float64 with max(h, w) ≤ size (area interpolation)."""
    h, w = _work_hw(array.shape, size)
    tensor = torch.as_tensor(np.asarray(array, dtype=np.float64))[None, None]
    if (h, w) != tuple(array.shape):
        tensor = F.interpolate(tensor, size=(h, w), mode="area")
    return tensor[0, 0]


def _groups(maps: Sequence[np.ndarray], size: int) -> dict[tuple[int, int], list[int]]:
    """Indices of the maps grouped by their working size (maps of one size are fitted as one batch)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, m in enumerate(maps):
        groups.setdefault(_work_hw(m.shape, size), []).append(i)
    return groups


def _work_hw(shape: tuple[int, ...], size: int) -> tuple[int, int]:
    """The working size of an (H, W) map: longer side at most ``size`` px, aspect kept."""
    scale = min(1.0, size / max(shape))
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def fit_calibration(
    predictions: Sequence[np.ndarray],
    *,
    targets: Sequence[np.ndarray] | None = None,
    fixations: Sequence[np.ndarray] | None = None,
    working_size: int = WORKING_SIZE,
    iterations: int = 60,
    names: Sequence[str] = (),
) -> Calibration:
    """Fit σ, the centre-bias weight and γ on n images with the network frozen.

    predictions: the model's saliency maps (H_i, W_i), non-negative, at each image's own size. fixations: per
    image an (N_i, 2) array of fixated 0-based (x, y) pixels at that size (the metrics' convention) — when given,
    the fit maximises their mean log-likelihood; else targets: the ground-truth maps (H_i, W_i), and the fit
    minimises the mean KL(target ‖ p).
    Raises ``ValueError`` when neither or mismatched lists are given.
    """
    if fixations is None and targets is None:
        raise ValueError("calibration needs fixations or ground-truth maps for the images")
    reference = fixations if fixations is not None else targets
    if len(reference) != len(predictions) or not predictions:
        raise ValueError(f"{len(predictions)} predictions but {len(reference)} ground truths: give one per image")
    batches = []
    for hw, indices in _groups(predictions, working_size).items():
        preds = torch.stack([_shrink(predictions[i], working_size) for i in indices]).clamp_min(0)
        if fixations is not None:
            rows, cols, image = [], [], []
            for k, i in enumerate(indices):
                sy, sx = hw[0] / predictions[i].shape[0], hw[1] / predictions[i].shape[1]
                points = np.asarray(fixations[i], dtype=np.float64).reshape(-1, 2)
                rows.append(np.clip(np.floor(points[:, 1] * sy), 0, hw[0] - 1))
                cols.append(np.clip(np.floor(points[:, 0] * sx), 0, hw[1] - 1))
                image.append(np.full(len(points), k))
            truth = tuple(torch.as_tensor(np.concatenate(a)).long() for a in (image, rows, cols))
        else:
            maps = torch.stack([_shrink(targets[i], working_size) for i in indices]).clamp_min(0)
            truth = maps / maps.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-30)
        batches.append((preds, truth, center_bias_map(*hw).double()))

    raw = torch.tensor([math.log(0.02), math.log(0.2 / 0.8), 0.0], dtype=torch.float64, requires_grad=True)

    def loss() -> torch.Tensor:
        sigma, weight, exponent = raw[0].exp(), torch.sigmoid(raw[1]), raw[2].exp()
        total, count = torch.zeros((), dtype=torch.float64), 0
        for preds, truth, prior in batches:
            log_p = _log_density(preds, sigma, weight, exponent, prior)
            if isinstance(truth, tuple):
                image, rows, cols = truth
                total = total - log_p[image, rows, cols].sum()
                count += len(image)
            else:
                total = total + (truth * (torch.log(truth.clamp_min(1e-30)) - log_p)).sum()
                count += len(truth)
        return total / max(count, 1)

    optimizer = torch.optim.LBFGS([raw], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = loss()
        value.backward()
        return value

    optimizer.step(closure)
    values = raw.detach()
    return Calibration(
        sigma=float(values[0].exp()),
        center_bias=float(torch.sigmoid(values[1])),
        exponent=float(values[2].exp()),
        objective="fixations" if fixations is not None else "maps",
        n_images=len(predictions),
        images=tuple(names),
    )
