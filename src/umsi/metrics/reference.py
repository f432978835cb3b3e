"""The evaluation metrics as they were computed before the fast path (umsi 41a04d5): float64 throughout, one tensor
expression per formula over the whole batch, AUC-Judd/Borji/sAUC looped per image.

Kept as the plain transcription that :mod:`umsi.metrics.functional` is tested against (every value within 1e-6
relative, in practice ~1e-12) and as the "before" side of ``make bench``; training and evaluation use
:mod:`umsi.metrics.functional`. Same signatures and conventions as the functions there. One known difference: a
constant float64 prediction gives NSS ±1 and CC ≠ 0 under ``convention="mit"`` here (rounding residue of the mean
divided by a near-zero standard deviation, issue 13 item 5); the fast functions return 0.
"""

from __future__ import annotations

import math

import torch

from umsi.metrics.functional import (
    CONVENTIONS,
    EPS,
    MATLAB_EPS,
    Fixations,
    _batch_maps,
    _flat,
    _pearson,
    _safe_divide,
    _zscore,
    fixations_to_map,
    kl_divergence,
    minmax_normalize,
)


def _check(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention={convention!r}: choose one of {CONVENTIONS}")
    return convention


def _work(x: torch.Tensor) -> torch.Tensor:
    """Maps → (B, H, W) in float64."""
    return _batch_maps(x).to(torch.float64)


def _pred(pred: torch.Tensor, convention: str) -> torch.Tensor:
    """(B, N) prediction: ``"umsi"`` min–max scales it to [0, 1] (constant → 0); ``"mit"`` leaves it as is."""
    p = _flat(_work(pred))
    return minmax_normalize(p, eps=0.0) if _check(convention) == "umsi" else p


def _target(target: torch.Tensor, pred: torch.Tensor, convention: str) -> torch.Tensor:
    """(B, N) continuous target: ``"umsi"`` divides a map whose max exceeds 1 by 255 (8-bit maps)."""
    g = _work(target)
    if g.shape != _batch_maps(pred).shape:
        raise ValueError(f"target {tuple(g.shape)} and prediction {tuple(_batch_maps(pred).shape)} differ in shape")
    g = _flat(g)
    if convention == "umsi":
        g = torch.where(g.amax(dim=1, keepdim=True) > 1, g / 255.0, g)
    return g


def _to_distribution(x: torch.Tensor, minmax: bool) -> torch.Tensor:
    """(B, N) map → probability distribution: min–max scaled (``minmax``) or, if it has negative values, shifted
    to minimum 0; then divided by its sum. A map with zero total mass becomes uniform (1/N)."""
    x = minmax_normalize(x, eps=0.0) if minmax else x - x.amin(dim=1, keepdim=True).clamp_max(0)
    total = x.sum(dim=1, keepdim=True)
    return torch.where(total > 0, x / torch.where(total > 0, total, torch.ones_like(total)), 1.0 / x.shape[1])


def _fixation_weights(fixations: Fixations, pred: torch.Tensor, binary: bool) -> torch.Tensor:
    p = _batch_maps(pred)
    weights = fixations_to_map(fixations, p.shape[-2], p.shape[-1], binary=binary, device=p.device)
    if weights.shape[0] != p.shape[0]:
        raise ValueError(f"{weights.shape[0]} fixation sets for a batch of {p.shape[0]} predictions")
    return _flat(weights)


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ w·v / Σ w per row, 0 where Σ w = 0 (no fixations)."""
    return _safe_divide((weights * values).sum(dim=1), weights.sum(dim=1), 0.0)


def cc(pred: torch.Tensor, target: torch.Tensor, *, convention: str = "umsi") -> torch.Tensor:
    """Linear correlation coefficient (Pearson) between prediction and continuous target map, per image.

    ``"umsi"`` (``cc_npy``): prediction min–max scaled, target ÷255 if its max > 1, then Pearson. ``"mit"``
    (``CC.m``): z-score both maps, mean of the product (= Pearson). Pearson is invariant to those affine scalings, so
    both conventions give the same value; computed in centred form in float64.
    Degenerate: 0 when either map is constant (incl. all-zero). Range [−1, 1]."""
    return _pearson(_pred(pred, convention), _target(target, pred, convention))


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
    if _check(convention) == "umsi":
        return kl_divergence(_pred(pred, convention), _target(target, pred, convention), EPS)
    p = _to_distribution(_pred(pred, convention), minmax=False)
    g = _to_distribution(_target(target, pred, convention), minmax=False)
    return (g * torch.log(MATLAB_EPS + g / (p + MATLAB_EPS))).sum(dim=1)


def sim(pred: torch.Tensor, target: torch.Tensor, *, convention: str = "umsi") -> torch.Tensor:
    """Similarity (histogram intersection) per image: both maps min–max scaled to [0, 1], divided by their sums,
    Σ min(P, G). Same in both conventions (``sim_npy`` and ``similarity.m``), in [0, 1].

    pysaliency's ``SIM`` does **not** min–max scale (it only shifts maps with negative values), so it agrees only
    when both maps have minimum 0; in general ``sim(P, G) = pysaliency.metrics.SIM(P − min P, G − min G)``.
    Degenerate: a constant (incl. all-zero) map becomes uniform, so SIM = Σ min(1/N, G) (1 if both constant)."""
    _check(convention)
    p = _to_distribution(_pred(pred, convention), minmax=True)
    g = _to_distribution(_target(target, pred, convention), minmax=True)
    return torch.minimum(p, g).sum(dim=1)


def r2(pred: torch.Tensor, target: torch.Tensor, *, convention: str = "umsi") -> torch.Tensor:
    """Coefficient of determination per image (``r2`` in the UMSI eval; MIT has none, so both conventions use it):
    P min–max scaled to [0, 1], G ÷255 if max > 1; R² = 1 − Σ(P − G)² / Σ(G − mean G)².
    Degenerate: constant target (Σ(G − mean G)² = 0) → 1 if P equals G exactly, else 0 (scikit-learn's rule)."""
    p = minmax_normalize(_flat(_work(pred)), eps=0.0)
    g = _target(target, pred, "umsi")
    residual = (p - g).pow(2).sum(dim=1)
    spread = (g - g.mean(dim=1, keepdim=True)).pow(2).sum(dim=1)
    perfect = (residual == 0).to(p.dtype)
    return torch.where(spread > 0, 1 - _safe_divide(residual, spread, 0.0), perfect)


def rmse(pred: torch.Tensor, target: torch.Tensor, *, convention: str = "umsi") -> torch.Tensor:
    """Root mean squared error per image (``rmse`` in the UMSI eval; MIT has none, so both conventions use it):
    P min–max scaled to [0, 1] (constant → 0), G ÷255 if max > 1; √mean((G − P)²). Always finite, in [0, 1]."""
    p = minmax_normalize(_flat(_work(pred)), eps=0.0)
    return (p - _target(target, pred, "umsi")).pow(2).mean(dim=1).sqrt()


def nss(pred: torch.Tensor, fixations: Fixations, *, convention: str = "umsi") -> torch.Tensor:
    """Normalized scanpath saliency per image: mean of the z-scored prediction at the fixations.

    ``"umsi"`` (``nss_npy``): P min–max scaled, z = (P − mean)/std with the **population** std (N); Σ F·z / Σ F with F
    used as weights (a point list → count map: every fixation counts, duplicates included — equals pysaliency's
    ``NSS`` averaged per fixation, which also uses the population std). ``"mit"`` (``NSS.m``): z-score with the
    **N − 1** std (MATLAB ``std``), mean over the fixated pixels F > 0 (duplicates collapse); this is the umsi value
    × √((N − 1)/N) for binary F.
    Degenerate: 0 for an image without fixations and for a constant prediction (z ≡ 0)."""
    mit = _check(convention) == "mit"
    z = _zscore(_pred(pred, convention), correction=1 if mit else 0)
    return _weighted_mean(z, _fixation_weights(fixations, pred, binary=mit))


def info_gain(
    pred: torch.Tensor, fixations: Fixations, baseline: torch.Tensor, *, convention: str = "umsi"
) -> torch.Tensor:
    """Information gain of the prediction over ``baseline`` (bits per fixation), per image (``InfoGain.m``):
    P and B (the baseline, (B, H, W), (B, 1, H, W) or one (H, W) map for all) min–max scaled and divided by their
    sums; mean over fixations of log₂(eps + P) − log₂(eps + B), eps = 2.2204e-16 in both conventions (UMSI has no
    IG). Fixation weighting: binary F > 0 (``"mit"``) or F as weights / point counts (``"umsi"``), see the module.
    Note pysaliency's ``information_gain`` needs a probabilistic model (log-densities), not these maps.
    Degenerate: 0 for an image without fixations; a constant (incl. all-zero) map is the uniform distribution, so
    IG = 0 when both maps are constant."""
    mit = _check(convention) == "mit"
    p_maps = _batch_maps(pred)
    base = baseline.to(p_maps.device)
    base = (base.expand(p_maps.shape) if base.dim() == 2 else _batch_maps(base)).expand(p_maps.shape)
    p = _to_distribution(_flat(_work(p_maps)), minmax=True)
    b = _to_distribution(_flat(_work(base)), minmax=True)
    values = torch.log2(MATLAB_EPS + p) - torch.log2(MATLAB_EPS + b)
    return _weighted_mean(values, _fixation_weights(fixations, pred, binary=mit))


def _trapezoid(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Trapezoidal area under y(x) along the last dimension."""
    return ((x[..., 1:] - x[..., :-1]) * (y[..., 1:] + y[..., :-1])).sum(dim=-1) / 2


def _fraction_at_least(sorted_values: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Fraction of ``sorted_values`` (ascending, last dim) that are ≥ each threshold."""
    n = sorted_values.shape[-1]
    below = torch.searchsorted(sorted_values.contiguous(), thresholds.contiguous(), side="left")
    return (n - below).to(sorted_values.dtype) / n


def auc_judd(pred: torch.Tensor, fixations: Fixations, *, convention: str = "umsi") -> torch.Tensor:
    """AUC-Judd per image (``AUC_Judd.m``; the same in both conventions, UMSI had none of its own):
    positives = values at the fixated pixels (binary, duplicates collapse), negatives = all unfixated pixels,
    thresholds = the distinct fixated values; TP = fraction of fixated pixels ≥ t, FP = fraction of unfixated
    pixels ≥ t; ROC closed by (0, 0) and (1, 1), trapezoidal area.

    **No jitter**: MATLAB adds U(0, 1e-7) noise to break ties; here ties are handled exactly (counts of values ≥ t),
    which equals the MATLAB result for tie-free maps and its expectation over the jitter otherwise (the trapezoid
    across a tie is the average of the random orderings). Equals pysaliency's ``AUC_Judd(..., jitter=False)``
    (``nonfixations='unfixated'``, ``thresholds='fixations'``) for duplicate-free fixations. Invariant to monotone
    rescaling of the prediction (so the umsi min–max step changes nothing).
    Degenerate: 0.5 for an image without fixations or with every pixel fixated; a constant map gives 0.5."""
    _check(convention)
    p = _flat(_work(pred))
    fix = _fixation_weights(fixations, pred, binary=True) > 0
    out = torch.full((p.shape[0],), 0.5, dtype=p.dtype, device=p.device)
    for i in range(p.shape[0]):
        positives, negatives = p[i][fix[i]], p[i][~fix[i]]
        if positives.numel() == 0 or negatives.numel() == 0:
            continue
        positives, negatives = positives.sort().values, negatives.sort().values
        thresholds = torch.unique(positives).flip(0)  # descending
        tp = _fraction_at_least(positives, thresholds)
        fp = _fraction_at_least(negatives, thresholds)
        zero, one = p.new_zeros(1), p.new_ones(1)
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
    p = minmax_normalize(_flat(_work(pred)), eps=0.0)
    fix = _fixation_weights(fixations, pred, binary=True) > 0
    out = torch.full((p.shape[0],), 0.5, dtype=p.dtype, device=p.device)
    generator = torch.Generator()
    for i in range(p.shape[0]):
        positives = p[i][fix[i]]
        if positives.numel() == 0:
            continue
        generator.manual_seed(seed)
        picks = torch.randint(0, p.shape[1], (n_splits, positives.numel()), generator=generator)
        out[i] = _sampled_auc(positives, p[i][picks.to(p.device)], step)
    return out


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
    p = minmax_normalize(_flat(_work(pred)), eps=0.0)
    fix = _fixation_weights(fixations, pred, binary=True) > 0
    other = _fixation_weights(nonfixations, pred, binary=True) > 0
    out = torch.full((p.shape[0],), 0.5, dtype=p.dtype, device=p.device)
    generator = torch.Generator()
    for i in range(p.shape[0]):
        positives = p[i][fix[i]]
        locations = other[i].nonzero().squeeze(1)
        if positives.numel() == 0 or locations.numel() == 0:
            continue
        generator.manual_seed(seed)
        take = min(positives.numel(), locations.numel())
        order = torch.rand(n_splits, locations.numel(), generator=generator).argsort(dim=1)[:, :take]
        out[i] = _sampled_auc(positives, p[i][locations[order.to(p.device)]], step)
    return out


__all__ = ["auc_borji", "auc_judd", "cc", "info_gain", "kl", "nss", "r2", "rmse", "sauc", "sim"]
