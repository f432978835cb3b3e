"""The evaluation metrics (not differentiable; float64 arithmetic on the maps' own values): :func:`cc`, :func:`kl`,
:func:`sim`, :func:`r2`, :func:`rmse`, :func:`nss`, :func:`auc_judd`, :func:`auc_borji`, :func:`sauc`,
:func:`info_gain`. Conventions, fixation weighting and degenerate values: :mod:`umsi.metrics.functional`.

Fixation maps are reduced once to the fixated pixels (a gather, not a dense mask); NSS and IG read the prediction's
moments and its values there; AUC-Judd counts with one sort of the map and a binary search per threshold; every sum
over pixels is a float64 block sum (:mod:`umsi.metrics.sums`). On the CPU torch works on one thread per part of a
batch (:func:`umsi.metrics.threads.per_image_threads`).
"""

from __future__ import annotations

import math

import torch

from umsi.metrics.loss_terms import EPS
from umsi.metrics.maps import Fixations, _batch_maps, _Fixated, _on, _pair, _rows, _sorted
from umsi.metrics.sums import (
    _WELL_CONDITIONED,
    _constant,
    _distribution_shift,
    _log_,
    _mass_step,
    _masses,
    _moments,
    _range,
    _rowdot,
    _span,
    _sums,
    _target_scale,
)
from umsi.metrics.threads import per_image_threads

MATLAB_EPS = 2.2204e-16
"""MATLAB ``eps`` as written in the MIT benchmark code and pysaliency's ``MIT_KLDiv``."""
CONVENTIONS = ("umsi", "mit")
CONVENTION_FREE = frozenset({"cc", "sim", "r2", "rmse", "auc_judd", "auc_borji", "sauc"})
"""Metrics whose value is the same under both conventions (each docstring says why): a caller that wants both needs
one call."""


def _check(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention={convention!r}: choose one of {CONVENTIONS}")
    return convention


@per_image_threads
def cc(pred: torch.Tensor, target: torch.Tensor, *, convention: str = "umsi") -> torch.Tensor:
    """Linear correlation coefficient (Pearson) between prediction and continuous target map, per image.

    ``"umsi"`` (``cc_npy``): prediction min–max scaled, target ÷255 if its max > 1, then Pearson. ``"mit"``
    (``CC.m``): z-score both maps, mean of the product (= Pearson). Pearson is invariant to those affine scalings, so
    both conventions give the same value; computed from centred float64 sums of the raw maps.
    Degenerate: 0 when either map is constant (incl. all-zero) or near-constant (std at most :data:`CONSTANT_RTOL`
    of its root mean square), in every dtype. Range [−1, 1]."""
    _check(convention)
    p, g = _pair(pred, target)
    shift, offset, centred, cov = _moments([p, g], cross=True)
    den = (centred[0] * centred[1]).sqrt()
    flat = _constant(centred, shift + offset, p.shape[1]).any(dim=0) | (den <= 0)
    return torch.where(flat, 0.0, cov / torch.where(flat, 1.0, den))


@per_image_threads
def kl(pred: torch.Tensor, target: torch.Tensor, *, convention: str = "umsi") -> torch.Tensor:
    """KL(target ‖ prediction), natural log (nats), per image; the target is the reference distribution.

    ``"umsi"`` (``kl_npy``, ε = 1e-7): P min–max scaled, then P ← P/max P; G ÷255 if max > 1; both divided by
    (their sum + ε); KL = Σ G·log(G/(P+ε) + ε) — :func:`kl_divergence` on the min–max scaled prediction.
    ``"mit"`` (``KLdiv.m``, eps = 2.2204e-16): no min–max; both sum-normalised (a map with negative values is first
    shifted to minimum 0, a zero-mass map becomes uniform — pysaliency's rules); KL = Σ G·log(eps + G/(P+eps)).
    Equals ``pysaliency.metrics.MIT_KLDiv(pred, target)``.
    Degenerate: all-zero target → 0 (umsi) / KL(uniform ‖ P) (mit); all-zero or constant prediction → the finite
    Σ G·log(G/ε + ε) (umsi: the min–max scaled map is all zero) / KL(G ‖ uniform) (mit). The ε regularisers can make
    the value slightly negative (Gibbs' inequality on the regularised maps): down to −N·eps (mit, N pixels) and to
    −(N·ε + ε/ΣG) (umsi, ΣG = the target's total mass), e.g. for identical maps."""
    umsi = _check(convention) == "umsi"
    p, g = _pair(pred, target)
    n = p.shape[1]
    if umsi:  # P = (x − min)/(max − min) / (Σ + ε) = (x − min)/(Σ(x − min) + ε·span); G likewise with its ÷255
        lo, hi = _range(p)
        shifts = torch.stack([lo, torch.zeros_like(lo)], dim=1)
        mass = _masses([p, g], shifts.T)
        divisors = torch.stack([mass[0] + EPS * _span(lo, hi), mass[1] + EPS * _target_scale(g, convention)], dim=1)
        eps, empty = EPS, torch.zeros_like(shifts, dtype=torch.bool)
    else:  # P = (x − shift)/Σ(x − shift), uniform where the mass is 0
        shifts = torch.stack([_distribution_shift(p, False), _distribution_shift(g, False)], dim=1)
        mass = _masses([p, g], shifts.T).T
        empty = mass <= 0
        divisors, eps = torch.where(empty, float(n), mass), MATLAB_EPS

    step = _mass_step(shifts, empty)
    eps_ = torch.tensor(eps, dtype=torch.float64, device=p.device)

    def kernel(
        block: torch.Tensor, shift: torch.Tensor, zero_mass: torch.Tensor, d: torch.Tensor
    ) -> tuple[torch.Tensor]:
        step(block, shift, zero_mass)
        prediction, target_ = block[:, 0], block[:, 1]
        dp, dg = d[:, 0], d[:, 1]  # (r, 1) each
        # with P, G the divided maps: G/(P+ε) + ε = (G·dP/dG)/(x + ε·dP) + ε and Σ G·log(…) = Σ (G·dP/dG)·log(…) / dP,
        # three passes over the block instead of five
        scaled = target_.mul_(dp / dg)
        ratio = torch.addcdiv(eps_, scaled, prediction.add_(eps * dp), out=prediction)
        return (_rowdot(scaled, _log_(ratio)) / dp[:, 0],)

    return _sums(kernel, [p, g], [shifts, empty, divisors])[0]


@per_image_threads
def sim(pred: torch.Tensor, target: torch.Tensor, *, convention: str = "umsi") -> torch.Tensor:
    """Similarity (histogram intersection) per image: both maps min–max scaled to [0, 1], divided by their sums,
    Σ min(P, G). Same in both conventions (``sim_npy`` and ``similarity.m``), in [0, 1].

    pysaliency's ``SIM`` does **not** min–max scale (it only shifts maps with negative values), so it agrees only
    when both maps have minimum 0; in general ``sim(P, G) = pysaliency.metrics.SIM(P − min P, G − min G)``.
    Degenerate: a constant (incl. all-zero) map becomes uniform, so SIM = Σ min(1/N, G) (1 if both constant)."""
    _check(convention)
    p, g = _pair(pred, target)
    shifts = torch.stack([_distribution_shift(p, True), _distribution_shift(g, True)], dim=1)
    mass = _masses([p, g], shifts.T).T  # (B, 2): Σ(x − min)
    empty = mass <= 0
    mass = torch.where(empty, float(p.shape[1]), mass)

    step = _mass_step(shifts, empty)

    def kernel(
        block: torch.Tensor, shift: torch.Tensor, zero_mass: torch.Tensor, ratio: torch.Tensor
    ) -> tuple[torch.Tensor]:
        step(block, shift, zero_mass)
        prediction, target_ = block[:, 0], block[:, 1]
        return (torch.minimum(prediction, target_.mul_(ratio[:, 0]), out=prediction).sum(dim=1),)

    # Σ min(P/mP, G/mG) = Σ min(P, G·mP/mG) / mP: one scaling pass instead of two
    return _sums(kernel, [p, g], [shifts, empty, mass[:, 0] / mass[:, 1]])[0] / mass[:, 0]


def _squared_residuals(pred: torch.Tensor, target: torch.Tensor, spread: bool) -> tuple[torch.Tensor, ...]:
    """Σ(P − G)² per image with P min–max scaled (constant → 0) and G ÷255 if its max > 1; with ``spread`` also the
    mean of G and Σ(G − mean G)² (for R²)."""
    p, g = _pair(pred, target)
    numel = p.shape[1]
    lo, hi = _range(p)
    scale = _target_scale(g, "umsi")

    scaling = bool((scale != 1).any())

    def kernel(block: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        lo_, span, scale_ = c.unbind(dim=1)  # (r, 1) each
        prediction, target_ = block[:, 0], block[:, 1]
        if scaling:
            target_.div_(scale_)
        moments = (target_.sum(dim=1), _rowdot(target_, target_)) if spread else ()
        residual = prediction.sub_(lo_).div_(span).sub_(target_)
        residual = _rowdot(residual, residual)
        return residual, *moments

    residual, *moments = _sums(kernel, [p, g], [torch.stack([lo, _span(lo, hi), scale], dim=1)])
    if not spread:
        return (residual,)
    sums, squares = moments
    mean = sums / numel
    centred = squares - sums * mean
    risky = (centred < _WELL_CONDITIONED * squares).nonzero().squeeze(1)
    if risky.numel():  # taken again around the mean (see _moments), then scaled like the target
        shift, offset, again_centred = _moments([g.index_select(0, risky)])
        mean[risky] = (shift[0] + offset[0]) / scale[risky]
        centred[risky] = again_centred[0] / scale[risky].square()
    return residual, mean, centred.clamp_min(0)


@per_image_threads
def r2(pred: torch.Tensor, target: torch.Tensor, *, convention: str = "umsi") -> torch.Tensor:
    """Coefficient of determination per image (``r2`` in the UMSI eval; MIT has none, so both conventions use it):
    P min–max scaled to [0, 1], G ÷255 if max > 1; R² = 1 − Σ(P − G)² / Σ(G − mean G)².
    Degenerate: constant target (Σ(G − mean G)² = 0, or near-constant: :data:`CONSTANT_RTOL`) → 1 if P equals G
    exactly, else 0 (scikit-learn's rule)."""
    _check(convention)
    residual, mean, spread = _squared_residuals(pred, target, spread=True)
    flat = _constant(spread, mean, _batch_maps(pred)[0].numel()) | (spread <= 0)
    perfect = (residual == 0).to(residual.dtype)
    return torch.where(flat, perfect, 1 - residual / torch.where(flat, 1.0, spread))


@per_image_threads
def rmse(pred: torch.Tensor, target: torch.Tensor, *, convention: str = "umsi") -> torch.Tensor:
    """Root mean squared error per image (``rmse`` in the UMSI eval; MIT has none, so both conventions use it):
    P min–max scaled to [0, 1] (constant → 0), G ÷255 if max > 1; √mean((G − P)²). Always finite, in [0, 1]."""
    _check(convention)
    (residual,) = _squared_residuals(pred, target, spread=False)
    return (residual / _batch_maps(pred)[0].numel()).sqrt()


@per_image_threads
def nss(pred: torch.Tensor, fixations: Fixations, *, convention: str = "umsi") -> torch.Tensor:
    """Normalized scanpath saliency per image: mean of the z-scored prediction at the fixations.

    ``"umsi"`` (``nss_npy``): P min–max scaled, z = (P − mean)/std with the **population** std (N); Σ F·z / Σ F with F
    used as weights (a point list → count map: every fixation counts, duplicates included — equals pysaliency's
    ``NSS`` averaged per fixation, which also uses the population std). ``"mit"`` (``NSS.m``): z-score with the
    **N − 1** std (MATLAB ``std``), mean over the fixated pixels F > 0 (duplicates collapse); this is the umsi value
    × √((N − 1)/N) for binary F. z is invariant to the min–max step, so it is taken from P directly (the mean and
    std from float64 sums; the fixated values gathered, not masked).
    Degenerate: 0 for an image without fixations and for a constant or near-constant prediction (std at most
    :data:`CONSTANT_RTOL` of its root mean square), in every dtype and convention."""
    mit = _check(convention) == "mit"
    p = _rows(pred)
    n = p.shape[1]
    fixated = _Fixated(fixations, _batch_maps(pred).shape, p.device, binary=mit)
    (shift,), (offset,), (centred,) = _moments([p])
    std = (centred / max(n - int(mit), 1)).sqrt()
    std = torch.where(_constant(centred, shift + offset, n), 0.0, std)[fixated.image]
    image = fixated.image
    z = (fixated.values(p).double() - shift[image] - offset[image]) / torch.where(std > 0, std, 1.0)
    return fixated.mean(torch.where(std > 0, z, 0.0))


@per_image_threads
def info_gain(
    pred: torch.Tensor, fixations: Fixations, baseline: torch.Tensor, *, convention: str = "umsi"
) -> torch.Tensor:
    """Information gain of the prediction over ``baseline`` (bits per fixation), per image (``InfoGain.m``):
    P and B (the baseline, (B, H, W), (B, 1, H, W) or one (H, W) map for all) min–max scaled and divided by their
    sums; mean over fixations of log₂(eps + P) − log₂(eps + B), eps = 2.2204e-16 in both conventions (UMSI has no
    IG). Fixation weighting: binary F > 0 (``"mit"``) or F as weights / point counts (``"umsi"``), see the module.
    Only the fixated values and each map's min, max and sum are read, so no map-sized logarithm is taken.
    Note pysaliency's ``information_gain`` needs a probabilistic model (log-densities), not these maps.
    Degenerate: 0 for an image without fixations; a constant (incl. all-zero) map is the uniform distribution, so
    IG = 0 when both maps are constant."""
    mit = _check(convention) == "mit"
    maps = _batch_maps(pred)
    p = _rows(maps)
    base = _on(baseline, p.device)
    shared = base.dim() == 2
    b = _rows(base[None] if shared else _batch_maps(base).expand(maps.shape))
    fixated = _Fixated(fixations, maps.shape, p.device, binary=mit)

    def log2_density(rows: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """log₂(eps + the min–max scaled, sum-normalised map) at the fixated pixels (uniform for zero mass)."""
        lo = rows.amin(dim=1).double()
        mass = _masses([rows], lo[None])[0]
        values = (rows[image, fixated.pixel].double() - lo[image]) / torch.where(mass > 0, mass, 1.0)[image]
        return torch.log2(MATLAB_EPS + torch.where(mass[image] > 0, values, 1.0 / rows.shape[1]))

    image = fixated.image
    gain = log2_density(p, image) - log2_density(b, torch.zeros_like(image) if shared else image)
    return fixated.mean(gain)


def _trapezoid(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Trapezoidal area under y(x) along the last dimension."""
    return ((x[..., 1:] - x[..., :-1]) * (y[..., 1:] + y[..., :-1])).sum(dim=-1) / 2


def _fraction_at_least(sorted_values: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Fraction of ``sorted_values`` (ascending, last dim) that are ≥ each threshold."""
    n = sorted_values.shape[-1]
    below = torch.searchsorted(sorted_values.contiguous(), thresholds.contiguous(), side="left")
    return (n - below).to(sorted_values.dtype) / n


@per_image_threads
def auc_judd(pred: torch.Tensor, fixations: Fixations, *, convention: str = "umsi") -> torch.Tensor:
    """AUC-Judd per image (``AUC_Judd.m``; the same in both conventions, UMSI had none of its own):
    positives = values at the fixated pixels (binary, duplicates collapse), negatives = all unfixated pixels,
    thresholds = the distinct fixated values; TP = fraction of fixated pixels ≥ t, FP = fraction of unfixated
    pixels ≥ t; ROC closed by (0, 0) and (1, 1), trapezoidal area.

    **No jitter**: MATLAB adds U(0, 1e-7) noise to break ties; here ties are handled exactly (counts of values ≥ t),
    which equals the MATLAB result for tie-free maps and its expectation over the jitter otherwise (the trapezoid
    across a tie is the average of the random orderings). Equals pysaliency's ``AUC_Judd(..., jitter=False)``
    (``nonfixations='unfixated'``, ``thresholds='fixations'``) for duplicate-free fixations. Invariant to monotone
    rescaling of the prediction (so the umsi min–max step changes nothing). The counts of unfixated pixels ≥ t come
    from one sort of the whole map (all pixels ≥ t minus fixated pixels ≥ t).
    Degenerate: 0.5 for an image without fixations or with every pixel fixated; a constant map gives 0.5."""
    _check(convention)
    p = _rows(pred)
    fixated = _Fixated(fixations, _batch_maps(pred).shape, p.device, binary=True)
    counts = fixated.counts()
    out = torch.full((p.shape[0],), 0.5, dtype=torch.float64, device=p.device)
    n = p.shape[1]
    for i, positives in enumerate(fixated.values(p).split(counts)):
        n_pos = counts[i]
        if n_pos == 0 or n_pos == n:
            continue
        positives = positives.sort().values
        thresholds = torch.unique_consecutive(positives).flip(0)  # descending
        at_least_all = n - torch.searchsorted(_sorted(p[i]), thresholds, side="left")
        at_least_pos = n_pos - torch.searchsorted(positives, thresholds, side="left")
        tp = at_least_pos.double() / n_pos
        fp = (at_least_all - at_least_pos).double() / (n - n_pos)
        zero, one = tp.new_zeros(1), tp.new_ones(1)
        out[i] = _trapezoid(torch.cat([zero, tp, one]), torch.cat([zero, fp, one]))
    return out


def _sampled_auc(positives: torch.Tensor, negatives: torch.Tensor, step: float) -> torch.Tensor:
    """MIT ``AUC_Borji``/``AUC_shuffled`` curve: positives (P,), negatives (S, M) for S splits, values in [0, 1];
    thresholds 0 : step : max descending (one grid for all splits: a threshold above a split's maximum adds the point
    (0, 0), which has no area); TP over positives, FP over each split's negatives → mean AUC over splits."""
    if step <= 0:
        raise ValueError(f"step={step}: the threshold step must be positive")
    top = float(torch.maximum(positives.max(), negatives.max()))
    count = math.floor(top / step + 1e-9) + 1
    thresholds = (torch.arange(count, dtype=positives.dtype, device=positives.device) * step).flip(0)
    tp = _fraction_at_least(positives.sort().values, thresholds)  # (T,)
    fp = _fraction_at_least(negatives.sort(dim=1).values, thresholds.expand(negatives.shape[0], -1))  # (S, T)
    zeros = negatives.new_zeros(negatives.shape[0], 1)
    ones = negatives.new_ones(negatives.shape[0], 1)
    y = torch.cat([zeros, tp.expand_as(fp), ones], dim=1)
    x = torch.cat([zeros, fp, ones], dim=1)
    return _trapezoid(y, x).mean()


class _MinMaxScaled:
    """Values of a (B, N) batch min–max scaled per image on demand, float64 ((x − min)/(max − min); constant → 0),
    without scaling the whole map: the sampled AUCs read only the fixated and the drawn pixels."""

    def __init__(self, rows: torch.Tensor) -> None:
        self.rows = rows
        self.lo, hi = _range(rows)
        self.span = torch.where(hi > self.lo, hi - self.lo, torch.ones_like(hi))

    def __call__(self, image: int, pixels: torch.Tensor) -> torch.Tensor:
        return (self.rows[image][pixels].double() - self.lo[image]) / self.span[image]


@per_image_threads
def auc_borji(
    pred: torch.Tensor,
    fixations: Fixations,
    *,
    seed: int = 0,
    n_splits: int = 100,
    step: float = 0.1,
    convention: str = "umsi",
) -> torch.Tensor:
    """AUC-Borji per image (``AUC_Borji.m``; the same in both conventions): P min–max scaled to [0, 1] (the
    thresholds are absolute); positives = values at the Nfix fixated pixels (binary); each of ``n_splits`` splits
    draws Nfix negatives uniformly with replacement from all pixels; thresholds 0 : ``step`` : max; TP/FP = fraction
    of positives/negatives ≥ t; trapezoidal area, averaged over the splits.

    Seeded: each image draws from a ``torch.Generator`` seeded with ``seed`` (on the CPU), so an image's value does not
    depend on its batch or device. pysaliency's ``AUC`` (uniform nonfixations, all thresholds) is the exact,
    sampling-free limit of this (n_splits → ∞, step → 0).
    Degenerate: 0.5 for an image without fixations and for a constant map."""
    _check(convention)
    p = _rows(pred)
    scaled = _MinMaxScaled(p)
    fixated = _Fixated(fixations, _batch_maps(pred).shape, p.device, binary=True)
    out = torch.full((p.shape[0],), 0.5, dtype=torch.float64, device=p.device)
    generator = torch.Generator()
    for i, pixels in enumerate(fixated.pixel.split(fixated.counts())):
        if pixels.numel() == 0:
            continue
        generator.manual_seed(seed)
        picks = torch.randint(0, p.shape[1], (n_splits, pixels.numel()), generator=generator)
        out[i] = _sampled_auc(scaled(i, pixels), scaled(i, picks.to(p.device)), step)
    return out


@per_image_threads
def sauc(
    pred: torch.Tensor,
    fixations: Fixations,
    nonfixations: Fixations,
    *,
    seed: int = 0,
    n_splits: int = 100,
    step: float = 0.1,
    convention: str = "umsi",
) -> torch.Tensor:
    """Shuffled AUC per image (``AUC_shuffled.m``; the same in both conventions): like :func:`auc_borji`, but the
    negatives of each split are min(Nfix, M) pixels drawn **without** replacement from the M fixated pixels of
    ``nonfixations`` — the fixations of OTHER images (a binary map batch (B, H, W), e.g. from
    :func:`other_image_fixations`, or per-image point lists, already in this image's coordinates; used as the binary
    set of pixels, as MIT's ``otherMap``). Seeded per image like :func:`auc_borji`.
    pysaliency's ``sAUC`` instead uses all other fixations (duplicates count) with all thresholds.
    Degenerate: 0.5 for an image without fixations, without nonfixations, or with a constant map."""
    _check(convention)
    p = _rows(pred)
    shape = _batch_maps(pred).shape
    scaled = _MinMaxScaled(p)
    fixated = _Fixated(fixations, shape, p.device, binary=True)
    other = _Fixated(nonfixations, shape, p.device, binary=True)
    out = torch.full((p.shape[0],), 0.5, dtype=torch.float64, device=p.device)
    generator = torch.Generator()
    pairs = zip(fixated.pixel.split(fixated.counts()), other.pixel.split(other.counts()), strict=True)
    for i, (pixels, locations) in enumerate(pairs):
        if pixels.numel() == 0 or locations.numel() == 0:
            continue
        generator.manual_seed(seed)
        take = min(pixels.numel(), locations.numel())
        order = _first_in_random_order(torch.rand(n_splits, locations.numel(), generator=generator), take)
        out[i] = _sampled_auc(scaled(i, pixels), scaled(i, locations[order.to(p.device)]), step)
    return out


def _first_in_random_order(keys: torch.Tensor, take: int) -> torch.Tensor:
    """The positions ``keys.argsort(dim=1)[:, :take]`` selects in each row of (S, M) random keys, as a set (any order):
    one partial selection (``topk``) instead of a full sort; a row where another key ties the largest one taken
    depends on how the sort orders ties and is sorted in full, so the set is always the sort's."""
    values, positions = keys.topk(take, dim=1, largest=False, sorted=False)
    boundary = values.max(dim=1, keepdim=True).values
    tied = ((keys <= boundary).sum(dim=1) != take).nonzero().squeeze(1)
    if tied.numel():
        positions[tied] = keys[tied].argsort(dim=1)[:, :take]
    return positions


__all__ = [
    "CONVENTIONS",
    "CONVENTION_FREE",
    "MATLAB_EPS",
    "auc_borji",
    "auc_judd",
    "cc",
    "info_gain",
    "kl",
    "nss",
    "r2",
    "rmse",
    "sauc",
    "sim",
]
