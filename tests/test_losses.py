"""Loss terms against hand-computed values, the weighted sum, and NaN-safety on degenerate inputs."""

from __future__ import annotations

import math

import pytest
import torch

from umsi.losses import UMSILoss, categorical_cross_entropy, similarity, softmax_binary_cross_entropy
from umsi.metrics.functional import (
    EPS,
    correlation_coefficient,
    kl_divergence,
    mean_squared_error,
    normalized_scanpath_saliency,
)

# One 2×2 image. Prediction P = [[1, 3], [0, 4]], target G = [[0.5, 0.5], [0, 1]], fixation at the 4.
P = torch.tensor([[[1.0, 3.0], [0.0, 4.0]]])
G = torch.tensor([[[0.5, 0.5], [0.0, 1.0]]])
F = torch.tensor([[[0.0, 0.0], [0.0, 1.0]]])


def test_kl_matches_hand_computation() -> None:
    # P/max = [.25, .75, 0, 1] → /Σ(2) = [.125, .375, 0, .5]; G/Σ(2) = [.25, .25, 0, .5]
    p = [0.125, 0.375, 0.0, 0.5]
    g = [0.25, 0.25, 0.0, 0.5]
    expected = sum(gi * math.log(gi / (pi + EPS) + EPS) for gi, pi in zip(g, p, strict=True))
    # = .25 ln 2 + .25 ln(2/3) + .5 ln 1 ≈ 0.07192
    assert expected == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(2 / 3), abs=1e-6)
    assert kl_divergence(P, G).item() == pytest.approx(expected, abs=1e-5)


def test_cc_matches_hand_computation() -> None:
    # P − mean(2) = [−1, 1, −2, 2]; G − mean(.5) = [0, 0, −.5, .5]; Σ = 2; |P| = √10, |G| = √.5
    assert correlation_coefficient(P, G).item() == pytest.approx(2 / math.sqrt(10 * 0.5), abs=1e-6)
    assert correlation_coefficient(P, P).item() == pytest.approx(1.0, abs=1e-6)
    assert correlation_coefficient(P, -P).item() == pytest.approx(-1.0, abs=1e-6)


def test_nss_matches_hand_computation() -> None:
    # P/max = [.25, .75, 0, 1]: mean .5, population std σ = √.15625; z at the fixated 4 = (1 − .5)/σ
    values = torch.tensor([0.25, 0.75, 0.0, 1.0])
    sigma = math.sqrt(((values - 0.5) ** 2).mean().item())  # = √0.15625
    assert normalized_scanpath_saliency(P, F).item() == pytest.approx(0.5 / (sigma + EPS), rel=1e-5)


def test_mse_matches_hand_computation() -> None:
    # (1−.5)² + (3−.5)² + 0 + (4−1)² = .25 + 6.25 + 9 = 15.5 → / 4
    assert mean_squared_error(P, G).item() == pytest.approx(15.5 / 4)


def test_classification_terms_match_hand_computation() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = [.25, .75]
    label = torch.tensor([1])
    # BCE mean over the 2 outputs: −[ln(1 − .25) + ln(.75)] / 2 = −ln(.75)
    assert softmax_binary_cross_entropy(logits, label).item() == pytest.approx(-math.log(0.75), rel=1e-5)
    assert categorical_cross_entropy(logits, label).item() == pytest.approx(-math.log(0.75), rel=1e-5)


def test_weighted_sum_and_terms() -> None:
    loss = UMSILoss(kl=10, cc=-3, nss=-5, mse=0.1, cls=5)
    logits = torch.tensor([[0.0, math.log(3.0)]])
    out = loss(P[:, None], logits, G[:, None], F[:, None], torch.tensor([1]))
    expected = {
        "kl": 10 * kl_divergence(P, G),
        "cc": -3 * correlation_coefficient(P, G),
        "nss": -5 * normalized_scanpath_saliency(P, F),
        "mse": 0.1 * mean_squared_error(P, G),
        "cls": 5 * softmax_binary_cross_entropy(logits, torch.tensor([1])),
    }
    for name, value in expected.items():
        assert out.weighted[name].item() == pytest.approx(value.item(), rel=1e-5), name
    assert out.total.item() == pytest.approx(sum(v.item() for v in expected.values()), rel=1e-5)


def test_nss_is_zero_without_fixations() -> None:
    assert normalized_scanpath_saliency(P, torch.zeros_like(F)).item() == 0.0


@pytest.mark.parametrize(
    ("pred", "target", "fix"),
    [
        (
            torch.zeros(2, 1, 8, 8),
            torch.rand(2, 1, 8, 8),
            (torch.rand(2, 1, 8, 8) > 0.7).float(),
        ),  # zero prediction
        (torch.rand(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8)),  # zero map, no fixations
        (torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8)),  # everything zero
        (torch.full((2, 1, 8, 8), 3.0), torch.full((2, 1, 8, 8), 0.2), torch.ones(2, 1, 8, 8)),  # constants
    ],
)
@pytest.mark.parametrize("classification", ["bce", "ce"])
def test_no_nan_or_inf_in_value_or_gradient(pred, target, fix, classification: str) -> None:
    pred = pred.clone().requires_grad_(True)
    logits = torch.zeros(2, 6, requires_grad=True)
    out = UMSILoss(kl=10, cc=-3, nss=-5, mse=0.1, cls=5, classification=classification)(
        pred, logits, target, fix, torch.tensor([0, 5])
    )
    out.total.backward()
    assert torch.isfinite(out.total)
    assert all(torch.isfinite(v) for v in out.raw.values())
    assert torch.isfinite(pred.grad).all() and torch.isfinite(logits.grad).all()


def test_unknown_classification_kind_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"loss\.classification"):
        UMSILoss(classification="focal")


def test_umsi_pp_terms_sim_and_nss_on_the_heatmap() -> None:
    """SIM is 1 for the same distribution and 0 for disjoint ones; nss_target=heatmap weighs NSS by the map."""
    torch.manual_seed(0)
    target = torch.rand(2, 1, 8, 10)
    fixations = torch.zeros_like(target)
    fixations[:, :, 2, 3] = 1
    labels = torch.zeros(2, dtype=torch.long)
    logits = torch.zeros(2, 3)
    plain = UMSILoss()(target * 4, logits, target, fixations, labels)
    assert "sim" not in plain.raw  # a term only when its weight is set: the default recipe logs what it did
    out = UMSILoss(sim=-1.0, nss=-0.5, nss_target="heatmap")(target * 4, logits, target, fixations, labels)
    torch.testing.assert_close(out.raw["sim"], torch.tensor(1.0))
    z = (target - target.mean(dim=(2, 3), keepdim=True)) / target.std(dim=(2, 3), unbiased=False, keepdim=True)
    expected = ((z * target).sum(dim=(1, 2, 3)) / target.sum(dim=(1, 2, 3))).mean()
    torch.testing.assert_close(out.raw["nss"], expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.weighted["sim"], -out.raw["sim"])
    left, right = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    left[..., :2], right[..., 2:] = 1, 1
    assert float(similarity(left, right)) == 0.0
