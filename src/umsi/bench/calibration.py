"""``make bench``'s calibration part: the time ``umsi-calibrate`` spends fitting one domain on n = 50 cached
predictions at 240×320 (the predictions themselves are timed by the inference part), for both objectives, and how
close the fit comes to the parameters the synthetic ground truth was made with."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from umsi.calibration import Calibration, fit_calibration, log_density

TARGET_SECONDS = 60.0  # issue 26: under 60 s for n = 50 once the predictions are cached
TRUTH = Calibration(sigma=0.05, center_bias=0.3, exponent=1.5)


def _domain(n: int, hw: tuple[int, int], seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """n smooth prediction maps, their ground-truth maps under TRUTH and 100 fixations (x, y) drawn from each."""
    rng = np.random.default_rng(seed)
    preds, truths, points = [], [], []
    for _ in range(n):
        x = gaussian_filter(rng.random(hw), max(hw) / 10)
        pred = ((x - x.min()) / (x.max() - x.min())) ** 3
        truth = np.exp(log_density(pred, TRUTH))
        flat = rng.choice(truth.size, 100, p=truth.ravel() / truth.sum())
        preds.append(pred)
        truths.append(truth)
        points.append(np.stack([flat % hw[1], flat // hw[1]], axis=1).astype(np.float64))
    return preds, truths, points


def bench_calibration(quick: bool = False) -> dict[str, Any]:
    """{objective: {seconds, sigma, center_bias, exponent, max_relative_error}} for n = 50 (8 with ``quick``)."""
    n, hw = (8, (48, 64)) if quick else (50, (240, 320))
    preds, truths, points = _domain(n, hw)
    out: dict[str, Any] = {"n": n, "size": list(hw), "target_seconds": TARGET_SECONDS}
    for objective in ("maps", "fixations"):
        start = time.perf_counter()
        fitted = fit_calibration(
            preds,
            targets=truths if objective == "maps" else None,
            fixations=points if objective == "fixations" else None,
        )
        seconds = time.perf_counter() - start
        errors = [abs(getattr(fitted, k) / getattr(TRUTH, k) - 1) for k in ("sigma", "center_bias", "exponent")]
        out[objective] = {
            "seconds": round(seconds, 3),
            "sigma": fitted.sigma,
            "center_bias": fitted.center_bias,
            "exponent": fitted.exponent,
            "max_relative_error": max(errors),
        }
    return out


def calibration_markdown(result: dict[str, Any]) -> list[str]:
    """The report's section."""
    height, width = result["size"]
    lines = [
        "",
        f"## Calibration fit (umsi-calibrate, n = {result['n']} cached predictions at {height}×{width})",
        "",
        f"Target: under {result['target_seconds']:.0f} s. Ground truth made with σ = {TRUTH.sigma}, centre-bias weight "
        f"{TRUTH.center_bias}, exponent {TRUTH.exponent}.",
        "",
        "| objective | seconds | σ | centre-bias weight | exponent | max relative error | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for objective in ("maps", "fixations"):
        r = result[objective]
        met = "yes" if r["seconds"] < result["target_seconds"] else "no"
        lines.append(
            f"| {objective} | {r['seconds']:.2f} | {r['sigma']:.4f} | {r['center_bias']:.4f} | {r['exponent']:.4f} "
            f"| {r['max_relative_error']:.2%} | {met} |"
        )
    return lines
