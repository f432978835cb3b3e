"""Saliency metrics: agreement with pysaliency, hand-computed values, properties (hypothesis), degenerate inputs,
and the torchmetrics wrappers on one process (DDP: test_metrics_ddp.py)."""

from __future__ import annotations

import math
import warnings
from types import ModuleType

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from threadpoolctl import ThreadpoolController

from umsi.metrics import functional as M
from umsi.metrics import reference as R
from umsi.metrics import sums
from umsi.metrics.collection import SALIENCY_METRICS, ClassAccuracy, MeanSaliencyMetric

with warnings.catch_warnings():  # pysaliency imports pkg_resources (deprecated) at import time
    warnings.simplefilter("ignore")
    import pysaliency
    import pysaliency.metrics as psm

REL = 1e-5
CONVENTIONS = ("umsi", "mit")
H, W = 24, 32


# --------------------------------------------------------------------------------------------------- test data


def _blobs(rng: np.random.Generator, n: int = 3, floor: float = 0.0) -> np.ndarray:
    """(H, W) sum of random Gaussian blobs plus ``floor``: a structured, smooth saliency-like map."""
    ys, xs = np.mgrid[0:H, 0:W]
    out = np.full((H, W), floor)
    for _ in range(n):
        cy, cx, s = rng.uniform(0, H), rng.uniform(0, W), rng.uniform(2, 8)
        out += rng.uniform(0.3, 1) * np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * s**2))
    return out


def _map_pairs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(4, H, W) predictions and targets: two random maps and two blob maps (positive minima, arbitrary scale)."""
    rng = np.random.default_rng(seed)
    preds = [rng.random((H, W)), rng.random((H, W)) ** 3, _blobs(rng), 5 * _blobs(rng, 4)]
    targets = [rng.random((H, W)), _blobs(rng), _blobs(rng, 2), rng.random((H, W)) * 255]
    return np.stack(preds), np.stack(targets)


def _points(rng: np.random.Generator, count: int) -> np.ndarray:
    """(count, 2) distinct 0-based (x, y) pixel positions: no duplicate fixations."""
    flat = rng.choice(H * W, size=count, replace=False)
    return np.stack([flat % W, flat // W], axis=1).astype(np.float64)


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x))


class _MapModel(pysaliency.SaliencyMapModel):
    """pysaliency model whose saliency map for a stimulus is the stimulus array itself."""

    def __init__(self) -> None:
        super().__init__(caching=False)

    def _saliency_map(self, stimulus: np.ndarray) -> np.ndarray:
        return stimulus


def _pysaliency_data(maps: np.ndarray, points: list[np.ndarray]) -> tuple[pysaliency.Stimuli, pysaliency.Fixations]:
    xs = np.concatenate([p[:, 0] for p in points])
    ys = np.concatenate([p[:, 1] for p in points])
    ns = np.concatenate([np.full(len(p), i) for i, p in enumerate(points)])
    return pysaliency.Stimuli(list(maps)), pysaliency.Fixations.create_without_history(xs, ys, ns)


@pytest.fixture
def numpy_trapz(monkeypatch: pytest.MonkeyPatch) -> None:
    """pysaliency 0.2.22's ROC calls ``np.trapz``, which NumPy 2.4 removed; ``np.trapezoid`` is the same function."""
    if not hasattr(np, "trapz"):
        monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)


# ------------------------------------------------------------------------------------ agreement with pysaliency


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_cc_matches_pysaliency(convention: str) -> None:
    preds, targets = _map_pairs()
    ours = M.cc(_t(preds), _t(targets), convention=convention).numpy()
    expected = [psm.CC(p, g) for p, g in zip(preds, targets, strict=True)]
    np.testing.assert_allclose(ours, expected, rtol=REL)
    # also (B, 1, H, W) input
    np.testing.assert_allclose(M.cc(_t(preds)[:, None], _t(targets)[:, None], convention=convention), ours)


def test_kl_mit_matches_pysaliency_mit_kldiv() -> None:
    preds, targets = _map_pairs(1)
    ours = M.kl(_t(preds), _t(targets), convention="mit").numpy()
    expected = [psm.MIT_KLDiv(p, g) for p, g in zip(preds, targets, strict=True)]  # second argument = ground truth
    np.testing.assert_allclose(ours, expected, rtol=REL)
    # direction: KL(GT ‖ pred), not KL(pred ‖ GT)
    reversed_ = [psm.MIT_KLDiv(g, p) for p, g in zip(preds, targets, strict=True)]
    assert np.abs(ours - reversed_).max() > 1e-3


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_nss_matches_pysaliency_without_duplicates(convention: str) -> None:
    rng = np.random.default_rng(2)
    preds, _ = _map_pairs(2)
    points = [_points(rng, k) for k in (1, 7, 20, 40)]
    pys = np.array([psm.NSS(p, pt[:, 0], pt[:, 1]).mean() for p, pt in zip(preds, points, strict=True)])
    ours = M.nss(_t(preds), points, convention=convention).numpy()
    if convention == "umsi":  # population std, like pysaliency (numpy std)
        np.testing.assert_allclose(ours, pys, rtol=REL)
    else:  # MATLAB std (N − 1): the same z-scores scaled by √((N − 1)/N)
        np.testing.assert_allclose(ours, pys * math.sqrt((H * W - 1) / (H * W)), rtol=REL)
    # the binary-map input gives the same values as the point lists
    fmap = M.fixations_to_map(points, H, W)
    np.testing.assert_allclose(M.nss(_t(preds), fmap, convention=convention).numpy(), ours, rtol=1e-12)


def test_nss_duplicate_fixations_count_in_umsi_and_collapse_in_mit() -> None:
    rng = np.random.default_rng(3)
    pred = _t(_map_pairs(3)[0][:1])
    unique = _points(rng, 10)
    doubled = np.concatenate([unique, unique[:3], unique[:1]])  # 3 positions fixated twice, one three times
    pys = psm.NSS(pred[0].numpy(), doubled[:, 0], doubled[:, 1]).mean()  # pysaliency: every fixation counts
    assert M.nss(pred, [doubled], convention="umsi").item() == pytest.approx(pys, rel=REL)
    mit = M.nss(pred, [doubled], convention="mit").item()
    assert mit == pytest.approx(M.nss(pred, [unique], convention="mit").item(), rel=1e-12)  # duplicates collapse
    assert abs(mit - pys) > 1e-3


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_sim_equals_pysaliency_on_maps_with_zero_minimum(convention: str) -> None:
    preds, targets = _map_pairs(4)
    preds = preds - preds.min(axis=(1, 2), keepdims=True)
    targets = targets - targets.min(axis=(1, 2), keepdims=True)
    ours = M.sim(_t(preds), _t(targets), convention=convention).numpy()
    np.testing.assert_allclose(ours, [psm.SIM(p, g) for p, g in zip(preds, targets, strict=True)], rtol=REL)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_sim_differs_from_pysaliency_by_the_min_max_step_on_maps_with_a_floor(convention: str) -> None:
    # Documented difference: we min–max scale (MATLAB similarity.m), pysaliency only sum-normalises. So our value
    # equals pysaliency's on the floor-subtracted maps and differs from pysaliency's on the raw ones.
    rng = np.random.default_rng(5)
    preds = np.stack([_blobs(rng, floor=0.3), _blobs(rng, floor=1.0)])
    targets = np.stack([_blobs(rng, floor=0.1), rng.random((H, W)) + 0.5])
    ours = M.sim(_t(preds), _t(targets), convention=convention).numpy()
    shifted = [psm.SIM(p - p.min(), g - g.min()) for p, g in zip(preds, targets, strict=True)]
    raw = np.array([psm.SIM(p, g) for p, g in zip(preds, targets, strict=True)])
    np.testing.assert_allclose(ours, shifted, rtol=REL)
    assert np.all(np.abs(ours - raw) > 1e-2)


def _quantised(rng: np.random.Generator, levels: int) -> np.ndarray:
    """(H, W) map with values k/levels (many ties), minimum 0 and maximum 1."""
    q = rng.integers(0, levels + 1, size=(H, W)).astype(np.float64)
    q.flat[0], q.flat[1] = 0, levels
    return q / levels


def test_auc_judd_matches_pysaliency_per_image(numpy_trapz: None) -> None:
    rng = np.random.default_rng(6)
    preds = np.stack([rng.random((H, W)), _blobs(rng), _quantised(rng, 5), _quantised(rng, 20)])
    points = [_points(rng, k) for k in (5, 30, 25, 60)]
    stimuli, fixations = _pysaliency_data(preds, points)
    expected = _MapModel().AUC_per_image(stimuli, fixations, nonfixations="unfixated", thresholds="fixations")
    for convention in CONVENTIONS:
        ours = M.auc_judd(_t(preds), points, convention=convention).numpy()
        np.testing.assert_allclose(ours, expected, rtol=REL)
    # the image-averaged AUC_Judd without jitter is the mean of these
    model_mean = _MapModel().AUC_Judd(stimuli, fixations, jitter=False)
    assert M.auc_judd(_t(preds), points).mean().item() == pytest.approx(model_mean, rel=REL)


def test_sauc_matches_pysaliency_with_the_same_negatives(numpy_trapz: None) -> None:
    # With at most Nfix negative locations every split takes all of them, so the shuffled AUC is deterministic; on
    # maps quantised to steps of 1/20 a threshold grid of 0.01 visits every ROC vertex, so it equals the exact AUC.
    rng = np.random.default_rng(7)
    preds = np.stack([_quantised(rng, 20) for _ in range(3)])
    points = [_points(rng, k) for k in (30, 12, 50)]
    negatives = [_points(rng, k) for k in (20, 12, 9)]
    stimuli, fixations = _pysaliency_data(preds, points)
    _, nonfixations = _pysaliency_data(preds, negatives)
    expected = _MapModel().AUC_per_image(stimuli, fixations, nonfixations=nonfixations, thresholds="all")
    ours = M.sauc(_t(preds), points, negatives, step=0.01, n_splits=3).numpy()
    np.testing.assert_allclose(ours, expected, rtol=REL)


def test_auc_borji_approaches_the_exact_uniform_auc_of_pysaliency(numpy_trapz: None) -> None:
    rng = np.random.default_rng(8)
    preds = np.stack([_blobs(rng), rng.random((H, W))])
    points = [_points(rng, 60), _points(rng, 60)]
    # fixations on the brightest pixels of the blob map make its AUC far from 0.5
    points[0] = np.stack(np.unravel_index(np.argsort(preds[0].ravel())[-60:], (H, W))[::-1], axis=1).astype(float)
    stimuli, fixations = _pysaliency_data(preds, points)
    exact = _MapModel().AUC_per_image(stimuli, fixations, nonfixations="uniform", thresholds="all")
    ours = M.auc_borji(_t(preds), points, n_splits=400, step=0.01, seed=1).numpy()
    np.testing.assert_allclose(ours, exact, atol=0.02)
    assert ours[0] > 0.8


def test_auc_borji_and_sauc_are_seeded_and_independent_of_the_batch() -> None:
    rng = np.random.default_rng(9)
    preds = _t(np.stack([rng.random((H, W)) for _ in range(3)]))
    fix = M.fixations_to_map([_points(rng, 15) for _ in range(3)], H, W)
    others = M.other_image_fixations(fix)
    for fn, extra in ((M.auc_borji, ()), (M.sauc, (others,))):
        first = fn(preds, fix, *extra, seed=3)
        assert torch.equal(first, fn(preds, fix, *extra, seed=3))
        assert not torch.equal(first, fn(preds, fix, *extra, seed=4))
        assert fn(preds[1:2], fix[1:2], *(e[1:2] for e in extra), seed=3).item() == first[1].item()


# ----------------------------------------------------------------------------------------- hand-computed values


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_r2_and_rmse_hand_computed(convention: str) -> None:
    # P = [0, 2, 4, 4] → min–max [0, .5, 1, 1]; G = [0, .5, .5, 1]
    # residuals² = [0, 0, .25, 0] → Σ .25; mean G = .5 → Σ(G − .5)² = .25 + 0 + 0 + .25 = .5
    # R² = 1 − .25/.5 = .5; RMSE = √(.25/4) = .25
    pred = torch.tensor([[[0.0, 2.0], [4.0, 4.0]]])
    target = torch.tensor([[[0.0, 0.5], [0.5, 1.0]]])
    assert M.r2(pred, target, convention=convention).item() == pytest.approx(0.5, abs=1e-12)
    assert M.rmse(pred, target, convention=convention).item() == pytest.approx(0.25, abs=1e-12)
    # an 8-bit target (max > 1) is divided by 255 first
    assert M.r2(pred, target * 255, convention=convention).item() == pytest.approx(0.5, abs=1e-12)
    assert M.rmse(pred, target * 255, convention=convention).item() == pytest.approx(0.25, abs=1e-12)


def test_kl_hand_computed_in_both_conventions() -> None:
    pred = torch.tensor([[[2.0, 4.0], [2.0, 6.0]]])
    target = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])
    # umsi: min–max P = [0, .5, 0, 1] (÷max 1) → /Σ 1.5 = [0, 1/3, 0, 2/3]; G/Σ = [0, .5, 0, .5]
    # KL = .5 ln(.5/(1/3)) + .5 ln(.5/(2/3)) = .5 ln 1.5 + .5 ln .75 = .5 ln 1.125 ≈ 0.0588915 (ε = 1e-7 aside)
    umsi = 0.5 * math.log(1.125)
    assert M.kl(pred, target, convention="umsi").item() == pytest.approx(umsi, abs=1e-6)
    assert M.kl(pred, target * 255, convention="umsi").item() == pytest.approx(umsi, abs=1e-6)
    # the float32 training-time evaluation_kl is the same quantity
    assert M.evaluation_kl(pred, target).item() == pytest.approx(umsi, abs=1e-6)
    # mit: no min–max; P/Σ(14) = [1/7, 2/7, 1/7, 3/7]; KL = .5 ln(.5·7/2) + .5 ln(.5·7/3) = .5 ln(1.75·7/6) ≈ 0.356932
    mit = 0.5 * math.log(1.75 * 7 / 6)
    assert M.kl(pred, target, convention="mit").item() == pytest.approx(mit, abs=1e-12)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_info_gain_hand_computed(convention: str) -> None:
    # P = [0, 1, 1, 2] → min–max [0, .5, .5, 1] → /Σ 2 = [0, .25, .25, .5]; constant baseline → uniform .25
    # fixations at pixels 1 (.25) and 3 (.5): log2(.25) − log2(.25) = 0, log2(.5) − log2(.25) = 1 → mean .5 bit
    pred = torch.tensor([[[0.0, 1.0], [1.0, 2.0]]])
    fix = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])
    baseline = torch.full((2, 2), 7.0)
    assert M.info_gain(pred, fix, baseline, convention=convention).item() == pytest.approx(0.5, abs=1e-12)
    # points (x, y) with pixel 3 = (1, 1) fixated twice: umsi counts it twice → (0 + 1 + 1)/3; mit collapses → .5
    points = [np.array([[1, 0], [1, 1], [1, 1]])]
    expected = 2 / 3 if convention == "umsi" else 0.5
    assert M.info_gain(pred, points, baseline, convention=convention).item() == pytest.approx(expected, abs=1e-12)


def test_auc_judd_hand_computed() -> None:
    # values [.1, .4, .35, .8], fixated: .35 and .8 → thresholds .8: TP .5, FP 0/2; .35: TP 1, FP 1/2 (the .4)
    # ROC (0,0) (0,.5) (.5,1) (1,1): area 0 + .5·(.5 + 1)/2 + .5·1 = .875
    pred = torch.tensor([[[0.1, 0.4], [0.35, 0.8]]])
    fix = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
    assert M.auc_judd(pred, fix).item() == pytest.approx(0.875, abs=1e-12)


def test_sauc_perfect_and_inverted_separation() -> None:
    # fixated pixels have value 1, the other images' fixations land on 0-valued pixels: every threshold in
    # 1.0 … 0.1 gives (FP 0, TP 1), threshold 0 gives (1, 1) → area 1; inverting the map gives 0.
    pred = torch.zeros(1, 4, 4)
    pred[0, :2] = 1.0
    fix = torch.zeros(1, 4, 4)
    fix[0, 0, :3] = 1.0
    other = torch.zeros(1, 4, 4)
    other[0, 3, :] = 1.0
    assert M.sauc(pred, fix, other).item() == pytest.approx(1.0, abs=1e-12)
    assert M.sauc(1 - pred, fix, other).item() == pytest.approx(0.0, abs=1e-12)


def test_fixation_points_convert_and_bounds_are_checked() -> None:
    points = [np.array([[0, 0], [3.7, 1.2], [3, 1]]), torch.zeros(0, 2)]
    counts = M.fixations_to_map(points, 2, 4, binary=False)
    assert counts[0, 1, 3] == 2 and counts[0, 0, 0] == 1 and counts.sum() == 3  # x 3.7 → 3 (truncated)
    assert M.fixations_to_map(points, 2, 4).max() == 1
    with pytest.raises(ValueError, match="outside"):
        M.fixations_to_map([np.array([[4, 0]])], 2, 4)
    with pytest.raises(ValueError, match="fixation sets"):
        M.nss(torch.rand(3, 2, 4), [np.array([[0, 0]])])
    with pytest.raises(ValueError, match="convention"):
        M.cc(torch.rand(1, 2, 2), torch.rand(1, 2, 2), convention="matlab")


def test_accuracy_and_per_class_accuracy_ignore_missing_labels() -> None:
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [2.0, 0.0, 0.0]])
    labels = torch.tensor([0, 1, 2, -1, 2])
    assert M.accuracy(logits, labels).tolist() == [1, 1, 0, 0, 0]  # label −1 never matches: callers mask it
    correct, total = M.per_class_accuracy(logits, labels, 3)
    assert correct.tolist() == [1, 1, 0] and total.tolist() == [1, 1, 2]
    with pytest.raises(ValueError, match="num_classes"):
        M.per_class_accuracy(logits, torch.tensor([0, 1, 3, 0, 0]), 3)


# ------------------------------------------------------------------- the fast functions against the reference


def _kinds(rng: np.random.Generator, b: int, h: int, w: int) -> dict[str, np.ndarray]:
    """Maps that stress the fast path: smooth, noisy, far from 0, signed, 8-bit, a single spike, many ties."""
    blobs = np.stack([np.pad(_blobs(rng), ((0, max(0, h - H)), (0, max(0, w - W))), mode="reflect") for _ in range(b)])
    spike = np.zeros((b, h, w))
    spike[:, 0, 0] = 1.0
    return {
        "random": rng.random((b, h, w)),
        "blobs": blobs[:, :h, :w],
        "offset": 1000 + 1e-3 * rng.random((b, h, w)),
        "signed": rng.normal(size=(b, h, w)),
        "eight_bit": rng.integers(0, 256, (b, h, w)).astype(np.float64),
        "spike": spike,
        "ties": rng.integers(0, 5, (b, h, w)) / 4,
    }


def _every_metric(
    functions: ModuleType,
    pred: torch.Tensor,
    target: torch.Tensor,
    fix: torch.Tensor,
    counts: torch.Tensor,
    others: torch.Tensor,
    baseline: torch.Tensor,
    convention: str,
) -> dict[str, torch.Tensor]:
    """Every metric of ``functions`` (the fast module or the reference) on one batch."""
    return {
        **{n: getattr(functions, n)(pred, target, convention=convention) for n in ("cc", "kl", "sim", "r2", "rmse")},
        "nss": functions.nss(pred, fix, convention=convention),
        "nss_counts": functions.nss(pred, counts, convention=convention),
        "info_gain": functions.info_gain(pred, counts, baseline, convention=convention),
        "auc_judd": functions.auc_judd(pred, fix, convention=convention),
        "auc_borji": functions.auc_borji(pred, fix, convention=convention, n_splits=7),
        "sauc": functions.sauc(pred, fix, others, convention=convention, n_splits=7),
    }


@pytest.mark.parametrize(
    ("dtype", "size", "block"),
    [
        (torch.float32, (24, 32), None),
        (torch.float64, (24, 32), None),
        (torch.float16, (24, 32), None),
        (torch.float32, (61, 47), 256),  # no even cut into pieces of 64–256 pixels: whole images
        (torch.float32, (48, 64), 256),  # images cut into 12 pieces of 256 pixels, one piece per block
        (torch.float64, (48, 64), 1024),  # 4 pieces per block
    ],
)
def test_fast_metrics_equal_the_float64_reference_within_1e_6(
    dtype: torch.dtype, size: tuple[int, int], block: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The contract of the fast path (issue 17): no value moves by more than 1e-6 relative from the previous float64
    # implementation (1e-12 absolute near 0). In practice the difference is ~1e-12; the largest, ~4e-8 on maps of
    # 1000 ± 0.001 under "mit", is the reference's own rounding (test_nss_and_cc_keep_their_precision_far_from_zero).
    # ``block`` shrinks the CPU working blocks so that small maps take the paths of large ones.
    if block:
        monkeypatch.setattr(sums, "_BLOCK_ELEMENTS", block)
    rng = np.random.default_rng(size[0])
    b, (h, w) = 2, size
    fix = torch.from_numpy(rng.random((b, h, w)) < 0.03).float()
    fix[:, 0, 1] = 1
    counts = fix * torch.from_numpy(rng.integers(1, 4, (b, h, w))).float()
    others = M.other_image_fixations(fix)
    baseline = M.center_bias_map(h, w)
    targets = _kinds(np.random.default_rng(1), b, h, w)
    for kind, pred in _kinds(rng, b, h, w).items():
        pred_t = _t(pred).to(dtype)
        target = _t(targets["blobs" if kind != "blobs" else "eight_bit"]).to(dtype)
        for convention in CONVENTIONS:
            fast = _every_metric(M, pred_t, target, fix, counts, others, baseline, convention)
            before = _every_metric(R, pred_t, target, fix, counts, others, baseline, convention)
            for name in fast:
                np.testing.assert_allclose(
                    fast[name].numpy(),
                    before[name].numpy(),
                    rtol=1e-6,
                    atol=1e-12,
                    err_msg=f"{name} {kind} {convention}",
                )


def test_fast_metrics_do_not_depend_on_the_batch_or_block_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    # A batch is scored in parts on several threads, images in blocks of pieces (with blocks of 2**16 pixels: 65537
    # pixels is prime, no even cut, whole images; 300×400: pieces of a quarter image); every image's value is the
    # one it has scored alone.
    monkeypatch.setattr("umsi.metrics.sums._BLOCK_ELEMENTS", 1 << 16)
    rng = np.random.default_rng(17)
    threads = torch.get_num_threads()
    for h, w in ((1, 65537), (300, 400)):
        pred, target = _t(rng.random((3, h, w))).float(), _t(rng.random((3, h, w)))
        fix = torch.from_numpy(rng.random((3, h, w)) < 0.01)
        for convention in CONVENTIONS:
            torch.set_num_threads(3)  # three parts of one image each, whatever this machine's default
            try:
                whole = _every_metric(M, pred, target, fix, fix, fix, M.center_bias_map(h, w), convention)
            finally:
                torch.set_num_threads(threads)
            for i in range(3):
                one = _every_metric(M, pred[i : i + 1], target[i : i + 1], fix[i : i + 1], fix[i : i + 1],
                                    fix[i : i + 1], M.center_bias_map(h, w), convention)  # fmt: skip
                for name, value in one.items():
                    assert value.item() == pytest.approx(whole[name][i].item(), rel=1e-12, abs=1e-15), (name, h, w)


def test_metrics_leave_torch_and_blas_threads_as_they_were_even_when_they_raise() -> None:
    # The metrics hold torch and NumPy's BLAS at one thread while they run (umsi.metrics.threads); both counts come
    # back, torch's OpenMP one included (a BLAS limiter restoring every library once set it to 1 for good).
    blas = ThreadpoolController().select(user_api="blas")
    before = torch.get_num_threads()
    blas_before = [info["num_threads"] for info in blas.info()]
    torch.set_num_threads(2)  # not the 1 of make test's OMP_NUM_THREADS, so that a wrong restore shows
    try:
        pred = torch.rand(4, 200, 200)
        assert M.nss(pred, pred > 0.99).shape == (4,) and torch.get_num_threads() == 2
        assert M.kl(pred, pred.flip(0)).shape == (4,) and torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="fixation sets"):
            M.nss(pred, [np.array([[0, 0]])])
        with pytest.raises(ValueError, match="differ in shape"):
            M.cc(pred, torch.rand(4, 200, 100))
        assert torch.get_num_threads() == 2
        assert [info["num_threads"] for info in blas.info()] == blas_before
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.float16, torch.float32, torch.float64])
def test_fixation_maps_of_every_dtype_give_the_same_fixated_pixels(dtype: torch.dtype) -> None:
    # Large fixation maps are scanned as integers of their width (bool 8 entries at a time): entries > 0 are the
    # fixations whatever the dtype; 0, -0.0, negative entries and NaN are not.
    gen = torch.Generator().manual_seed(5)
    pred = torch.rand(3, 120, 160, generator=gen)
    fix = (torch.rand(3, 120, 160, generator=gen) < 0.002).float()
    fix[0, 5, 7] = fix[1, 0, 0] = fix[2, -1, -1] = 1.0  # first and last pixels of a batch
    expected = {conv: M.nss(pred, fix, convention=conv) for conv in CONVENTIONS}
    judd = M.auc_judd(pred, fix)
    typed = fix.to(dtype)
    if dtype.is_floating_point:  # not fixations: -0.0, negative values, NaN
        typed[0, 10, 10], typed[1, 20, 20], typed[2, 30, 30] = -0.0, -3.0, float("nan")
        typed[0, 11, 11] = 1e-30 if dtype == torch.float64 else 1e-4  # tiny but > 0: a fixation
        for conv in CONVENTIONS:
            with_tiny = fix.clone().double()
            with_tiny[0, 11, 11] = 1.0
            expected[conv] = M.nss(pred, with_tiny > 0, convention=conv)
        judd = M.auc_judd(pred, with_tiny > 0)
    for conv in CONVENTIONS:
        if conv == "umsi" and dtype.is_floating_point:  # weights = F: the tiny entry has a tiny weight
            continue
        torch.testing.assert_close(M.nss(pred, typed, convention=conv), expected[conv], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(M.auc_judd(pred, typed), judd, rtol=1e-12, atol=1e-12)
    odd = typed[:, :, :157]  # rows of 157 entries: no even cut into runs of 64–256, bool read byte by byte
    torch.testing.assert_close(
        M.nss(pred[:, :, :157], odd, convention="mit"), M.nss(pred[:, :, :157], odd > 0, convention="mit")
    )


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_nss_and_cc_keep_their_precision_far_from_zero(convention: str) -> None:
    # 1000 ± 0.001: Σx² − (Σx)²/N would cancel, so these maps are summed again around their mean. Checked against an
    # extended-precision transcription (np.longdouble) of the definitions.
    rng = np.random.default_rng(5)
    pred = (1000 + 1e-3 * rng.random((2, 60, 80))).astype(np.float32)
    target = (1000 + 1e-3 * rng.random((2, 60, 80))).astype(np.float32)
    fix = rng.random((2, 60, 80)) < 0.05
    for i in range(2):
        x, y = pred[i].astype(np.longdouble).ravel(), target[i].astype(np.longdouble).ravel()
        x, y = x - x.mean(), y - y.mean()
        std = np.sqrt((x * x).sum() / (x.size - (convention == "mit")))
        nss = float((x[fix[i].ravel()] / std).mean())
        cc = float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))
        assert M.nss(_t(pred[i : i + 1]), _t(fix[i : i + 1]), convention=convention).item() == pytest.approx(
            nss, rel=1e-10
        )
        assert M.cc(_t(pred[i : i + 1]), _t(target[i : i + 1]), convention=convention).item() == pytest.approx(
            cc, rel=1e-10
        )


# -------------------------------------------------------------------------------------------- degenerate inputs


def _all_metrics(pred: torch.Tensor, target: torch.Tensor, fix: torch.Tensor, convention: str) -> dict:
    baseline = M.center_bias_map(*pred.shape[-2:])
    others = M.other_image_fixations(fix)
    return {
        **{n: SALIENCY_METRICS[n](pred, target, convention=convention) for n in ("cc", "kl", "sim", "r2", "rmse")},
        "nss": M.nss(pred, fix, convention=convention),
        "auc_judd": M.auc_judd(pred, fix, convention=convention),
        "auc_borji": M.auc_borji(pred, fix, convention=convention, n_splits=10),
        "sauc": M.sauc(pred, fix, others, convention=convention, n_splits=10),
        "info_gain": M.info_gain(pred, fix, baseline, convention=convention),
    }


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_degenerate_inputs_give_the_documented_values(convention: str) -> None:
    gen = torch.Generator().manual_seed(0)
    zeros, const, rand = torch.zeros(2, 6, 5), torch.full((2, 6, 5), 0.4), torch.rand(2, 6, 5, generator=gen)
    no_fix = torch.zeros(2, 6, 5)
    fix = (torch.rand(2, 6, 5, generator=gen) > 0.7).float()
    fix[:, 0, 0] = 1
    for pred, target in ((zeros, rand), (const, rand), (rand, zeros), (rand, const), (zeros, zeros)):
        values = _all_metrics(pred, target, no_fix, convention)
        assert all(torch.isfinite(v).all() for v in values.values())
        assert values["cc"].eq(0).all()
        assert values["nss"].eq(0).all() and values["info_gain"].eq(0).all()
        for name in ("auc_judd", "auc_borji", "sauc"):
            assert values[name].eq(0.5).all(), name
        values = _all_metrics(pred, target, fix, convention)
        assert all(torch.isfinite(v).all() for v in values.values())
    # constant prediction with fixations: NSS 0 (z ≡ 0), AUCs 0.5
    values = _all_metrics(const, rand, fix, convention)
    assert values["nss"].eq(0).all() and values["auc_judd"].eq(0.5).all() and values["auc_borji"].eq(0.5).all()
    # two constant maps are both uniform: SIM 1; constant target: R² 0 unless the prediction matches exactly
    assert M.sim(const, zeros, convention=convention).sub(1).abs().max() < 1e-12
    assert M.r2(rand, const, convention=convention).eq(0).all()
    assert M.r2(zeros, zeros, convention=convention).eq(1).all()
    assert M.info_gain(const, fix, zeros, convention=convention).abs().max() < 1e-12


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_constant_prediction_scores_zero_nss_and_cc_for_every_dtype(dtype: torch.dtype) -> None:
    # Issue 13 item 5: the mean of a constant float64 map carries a rounding residue, which divided by the ~0 standard
    # deviation gave NSS ±1 under "mit" (and CC ≠ 0). Constant maps, and maps whose range is rounding-level relative
    # to their scale, score NSS 0 and CC 0 for every dtype, value, size and convention; a real map next to them in
    # the batch keeps its value.
    rng = np.random.default_rng(13)
    values = [0.0, 1.0, 255.0, -3.0, *rng.uniform(-300, 300, 6)]
    for h, w in ((3, 3), (7, 9), (24, 32), (240, 320)):
        gen = torch.Generator().manual_seed(h)
        target = torch.rand(1, h, w, generator=gen, dtype=torch.float64)
        real = torch.rand(1, h, w, generator=gen, dtype=torch.float64)
        base = torch.tensor(values, dtype=torch.float64).view(-1, 1, 1).expand(-1, h, w)
        wobble = base * 2.0**-50 * torch.randint(0, 4, (len(values), h, w), generator=gen)  # a few float64 ulps
        preds = torch.cat([base, base + wobble, real]).to(dtype)
        fix = torch.zeros(len(preds), h, w)
        fix[:, 0, 1] = fix[:, h - 1, w // 2] = fix[:, h // 2, 0] = 1
        for convention in CONVENTIONS:
            nss = M.nss(preds, fix, convention=convention)
            cc = M.cc(preds, target.expand_as(preds), convention=convention)
            assert nss[:-1].eq(0).all() and cc[:-1].eq(0).all(), (h, w, convention, nss, cc)
            assert nss[-1] != 0 and cc[-1] != 0
            assert nss[-1].item() == pytest.approx(R.nss(preds[-1:], fix[-1:], convention=convention).item(), rel=1e-9)


def test_convention_free_metrics_give_one_value_under_both_conventions() -> None:
    # umsi-eval computes the metrics in M.CONVENTION_FREE once and reports the value under both conventions.
    gen = torch.Generator().manual_seed(5)
    pred, target = torch.rand(3, 24, 32, generator=gen), torch.rand(3, 24, 32, generator=gen) * 255
    fix = (torch.rand(3, 24, 32, generator=gen) > 0.97).float() * torch.randint(1, 3, (3, 24, 32), generator=gen)
    others = (torch.rand(3, 24, 32, generator=gen) > 0.9).float()
    extra = {"sauc": (others,)}
    for name in sorted(M.CONVENTION_FREE):
        second = target if name in ("cc", "sim", "r2", "rmse") else fix
        values = [getattr(M, name)(pred, second, *extra.get(name, ()), convention=c) for c in CONVENTIONS]
        assert torch.equal(values[0], values[1]), name
    assert "kl" not in M.CONVENTION_FREE and "nss" not in M.CONVENTION_FREE and "info_gain" not in M.CONVENTION_FREE


def test_eval_scoring_equals_the_previous_scoring() -> None:
    from umsi.evaluation.scoring import ScoringSettings, image_metrics

    gen = torch.Generator().manual_seed(6)
    pred, target = torch.rand(48, 64, generator=gen), torch.rand(48, 64, generator=gen)
    fix = (torch.rand(48, 64, generator=gen) > 0.98).double()
    others = (torch.rand(48, 64, generator=gen) > 0.9).double()
    args = (pred, target, fix, others, M.center_bias_map(48, 64), ScoringSettings(progress=False))
    fast, before = image_metrics(*args), image_metrics(*args, functions=R)
    assert fast.keys() == before.keys() and len(fast) == 20
    for key, value in before.items():
        assert fast[key] == pytest.approx(value, rel=1e-6, abs=1e-12), key


# Property tests: derandomized and without an example database (reproducible, nothing written to the checkout).
maps = arrays(np.float64, st.tuples(st.just(4), st.integers(2, 5), st.integers(2, 5)), elements=st.integers(0, 255))
"""Two (2, h, w) maps of 8-bit values stacked: [:2] and [2:]."""


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(maps, st.floats(0.1, 10), st.floats(-5, 5))
def test_cc_is_invariant_to_affine_rescaling_of_the_prediction(pair: np.ndarray, a: float, b: float) -> None:
    pred, target = _t(pair[:2] / 255), _t(pair[2:])
    for convention in CONVENTIONS:
        base = M.cc(pred, target, convention=convention)
        assert base.abs().max() <= 1 + 1e-12
        torch.testing.assert_close(M.cc(a * pred + b, target, convention=convention), base, atol=1e-9, rtol=0)


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(maps)
def test_kl_is_nonnegative_and_zero_for_identical_maps_and_sim_is_at_most_one(pair: np.ndarray) -> None:
    pred, target = _t(pair[:2] / 255), _t(pair[2:] / 255)
    n = pair.shape[1] * pair.shape[2]
    # Gibbs' inequality on the regularised maps: KL ≥ Σg·log(Σg / Σ(p + ε)). mit: Σg = 1, Σp = 1 → ≥ −N·eps;
    # umsi: Σg = ΣG/(ΣG + ε), Σp ≤ 1 → ≥ −(N·ε + ε/ΣG), ΣG the target mass (KL = 0 for an all-zero target)
    mass = target.sum(dim=(1, 2))
    umsi_bound = n * M.EPS + torch.where(mass > 0, M.EPS / mass.clamp_min(1e-300), 0) + 1e-12
    assert (M.kl(pred, target, convention="umsi") >= -umsi_bound).all()
    assert (M.kl(pred, target, convention="mit") >= -n * M.MATLAB_EPS).all()
    for convention in CONVENTIONS:
        sim = M.sim(pred, target, convention=convention)
        assert (sim <= 1 + 1e-12).all() and (sim >= 0).all()
    # identical maps → 0 up to the ε terms; "umsi" min–max scales only the prediction, so its identity case is a
    # map with minimum 0
    same = target - target.amin(dim=(1, 2), keepdim=True)
    same_mass = same.sum(dim=(1, 2))
    same_bound = n * M.EPS + torch.where(same_mass > 0, M.EPS / same_mass.clamp_min(1e-300), 0) + 1e-12
    assert (M.kl(same, same, convention="umsi").abs() <= same_bound).all()
    assert M.kl(target, target, convention="mit").abs().max() < 1e-12


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(
    arrays(np.float64, (2, 3, 4), elements=st.sampled_from([0.0, 0.5, 1.0])),
    arrays(np.float64, (2, 3, 4), elements=st.sampled_from([0.0, 1.0, 255.0])),
    arrays(np.bool_, (2, 3, 4)),
)
def test_every_metric_is_finite_on_degenerate_maps(p: np.ndarray, g: np.ndarray, f: np.ndarray) -> None:
    for convention in CONVENTIONS:
        for name, value in _all_metrics(_t(p), _t(g), _t(f.astype(np.float64)), convention).items():
            assert torch.isfinite(value).all(), (convention, name)


# ------------------------------------------------------------------------------------------- metric collection


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_mean_saliency_metric_averages_per_image_values_with_a_mask() -> None:
    rng = np.random.default_rng(10)
    preds, _ = _map_pairs(10)
    fix = M.fixations_to_map([_points(rng, 8), np.zeros((0, 2)), _points(rng, 3), _points(rng, 20)], H, W)
    metric = MeanSaliencyMetric("nss", convention="mit")
    assert metric.compute().item() == 0.0 and metric.count.item() == 0  # no images: defined value, count 0
    has_fix = fix.flatten(1).sum(1) > 0
    metric.update(_t(preds[:2]), fix[:2], mask=has_fix[:2])  # batches of different sizes
    metric.update(_t(preds[2:]), fix[2:], mask=has_fix[2:])
    per_image = M.nss(_t(preds), fix, convention="mit")
    assert metric.count.item() == 3
    assert metric.compute().item() == pytest.approx(per_image[has_fix].mean().item(), rel=1e-12)


def test_mean_saliency_metric_passes_function_and_per_batch_arguments() -> None:
    preds, _ = _map_pairs(11)
    fix = (torch.rand(4, H, W, generator=torch.Generator().manual_seed(11)) > 0.95).double()
    borji = MeanSaliencyMetric("auc_borji", seed=5, n_splits=7, step=0.2)
    borji.update(_t(preds), fix)
    expected = M.auc_borji(_t(preds), fix, seed=5, n_splits=7, step=0.2).mean()
    assert borji.compute().item() == pytest.approx(expected.item(), rel=1e-12)
    gain = MeanSaliencyMetric("info_gain", convention="mit")
    baseline = M.center_bias_map(H, W)
    gain.update(_t(preds), fix, baseline=baseline)
    assert gain.compute().item() == pytest.approx(M.info_gain(_t(preds), fix, baseline, convention="mit").mean())
    with pytest.raises(ValueError, match="unknown saliency metric"):
        MeanSaliencyMetric("emd")


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_class_accuracy_counts_overall_and_per_class() -> None:
    metric = ClassAccuracy(3)
    assert metric.compute().item() == 0.0
    metric.update(torch.tensor([[2.0, 0, 0], [0, 2.0, 0]]), torch.tensor([0, 2]))
    metric.update(torch.tensor([[0, 0, 2.0], [2.0, 0, 0], [0, 2.0, 0]]), torch.tensor([2, -1, 1]))
    assert metric.total.tolist() == [1, 1, 2] and metric.correct.tolist() == [1, 1, 1]
    assert metric.compute().item() == pytest.approx(3 / 4)
    assert metric.per_class().tolist() == pytest.approx([1.0, 1.0, 0.5])
    empty = ClassAccuracy(2)
    empty.update(torch.zeros(1, 2), torch.tensor([-1]))
    assert empty.compute().item() == 0.0 and empty.per_class().tolist() == [0.0, 0.0]


def test_sauc_draws_the_negatives_a_full_sort_draws() -> None:
    # sauc takes the first min(Nfix, M) positions of a random order by partial selection; the set must be the one
    # argsort gives, also where keys tie at the boundary (coarse keys force ties).
    from umsi.metrics.evaluation import _first_in_random_order

    gen = torch.Generator().manual_seed(7)
    for keys in (torch.rand(50, 3000, generator=gen), torch.randint(0, 40, (50, 3000), generator=gen).float()):
        for take in (1, 30, 3000):
            expected = keys.argsort(dim=1)[:, :take].sort(dim=1).values
            assert torch.equal(_first_in_random_order(keys, take).sort(dim=1).values, expected)
