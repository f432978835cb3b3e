"""Speed and agreement of the batched torch saliency metrics (``umsi.metrics.functional``) against a per-image
pysaliency loop, on the same random smooth maps and fixations.

Each side gets its native input: torch a batch of (B, H, W) float32 maps and (B, H, W) fixation maps, as a
validation step has them; pysaliency one (H, W) map at a time and the fixations as x/y coordinate arrays. The
fixations are distinct pixels, so the binary (torch) and per-fixation (pysaliency) views agree, and the maps have
minimum 0, so SIM needs no min–max step; the conventions chosen per metric are the ones that equal pysaliency.

Run ``python -m umsi.bench.metrics [--quick] [--out result.json]`` (pysaliency is a dev dependency).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from umsi.metrics import functional as M

__all__ = ["TARGET_SPEEDUP", "bench_metrics", "make_inputs"]

TARGET_SPEEDUP = 10.0
"""The issue's goal: torch at least this many times faster than the pysaliency loop."""
METRICS = ("cc", "kl", "nss", "sim", "auc_judd")
# torch convention per metric that equals the pysaliency call next to it
CONVENTION = {"cc": "umsi", "kl": "mit", "nss": "umsi", "sim": "umsi", "auc_judd": "umsi"}
PYSALIENCY_CALL = {
    "cc": "pysaliency.metrics.CC(pred, gt)",
    "kl": "pysaliency.metrics.MIT_KLDiv(pred, gt)",
    "nss": "pysaliency.metrics.NSS(pred, xs, ys).mean()",
    "sim": "pysaliency.metrics.SIM(pred, gt)",
    "auc_judd": "SaliencyMapModel.AUC_per_image(nonfixations='unfixated', thresholds='fixations')",
}


def _smooth(rng: np.random.Generator, size: tuple[int, int], sigma: float) -> np.ndarray:
    """(H, W) float32 blurred white noise, min–max scaled to [0, 1]."""
    noise = rng.standard_normal(size).astype(np.float32)
    m = cv2.GaussianBlur(noise, (0, 0), sigmaX=sigma, sigmaY=sigma)
    m -= m.min()
    return m / max(float(m.max()), 1e-12)


def make_inputs(
    n_maps: int, size: tuple[int, int], seed: int = 0, n_fixations: int = 100
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(predictions (B, H, W) float32, ground truth (B, H, W) float32, B point arrays (N, 2) of 0-based x, y):
    smooth maps with minimum 0, the ground truth correlated with the prediction, and distinct fixated pixels
    drawn from the ground truth's square."""
    rng = np.random.default_rng(seed)
    height, width = size
    sigma = max(1.0, min(size) / 16)
    preds, gts, points = [], [], []
    for _ in range(n_maps):
        pred = _smooth(rng, size, sigma)
        gt = 0.6 * pred + 0.4 * _smooth(rng, size, sigma)
        gt = (gt - gt.min()) / max(float(gt.max() - gt.min()), 1e-12)
        weights = gt.ravel().astype(np.float64) ** 2
        count = min(n_fixations, int(np.count_nonzero(weights)))
        flat = rng.choice(height * width, size=count, replace=False, p=weights / weights.sum())
        preds.append(pred)
        gts.append(gt.astype(np.float32))
        points.append(np.stack([flat % width, flat // width], axis=1).astype(np.float64))
    return np.stack(preds), np.stack(gts), points


@contextlib.contextmanager
def _numpy_trapz() -> Iterator[None]:
    """pysaliency 0.2.22's ROC calls ``np.trapz``, which NumPy 2.4 removed: alias ``np.trapezoid`` meanwhile."""
    added = not hasattr(np, "trapz")
    if added:
        np.trapz = np.trapezoid  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if added:
            del np.trapz


def _import_pysaliency() -> Any:
    with warnings.catch_warnings():  # pysaliency imports pkg_resources (deprecated) at import time
        warnings.simplefilter("ignore")
        import pysaliency
        import pysaliency.metrics

    return pysaliency


def _map_model(pysaliency: Any) -> Any:
    """A pysaliency model whose saliency map for a stimulus is the stimulus array itself."""

    class MapModel(pysaliency.SaliencyMapModel):
        def __init__(self) -> None:
            super().__init__(caching=False)

        def _saliency_map(self, stimulus: np.ndarray) -> np.ndarray:
            return stimulus

    return MapModel()


def _timed(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> tuple[float, Any]:
    """Best wall time of ``repeats`` calls and the last result."""
    best, value = float("inf"), None
    for _ in range(max(1, repeats)):
        sync()
        start = time.perf_counter()
        value = fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best, value


def bench_metrics(
    n_maps: int = 100,
    size: Sequence[int] = (480, 640),
    seed: int = 0,
    *,
    device: str | None = None,
    batch_size: int = 32,
    n_fixations: int = 100,
    repeats: int = 1,
) -> dict[str, Any]:
    """Time cc, kl, nss, sim and auc_judd both ways on ``n_maps`` maps of ``size`` and return a JSON-serialisable
    dict with the keys ``machine``, ``config``, ``metrics`` (per metric: ``torch_s``, ``pysaliency_s``, ``speedup``,
    ``max_abs_diff``, ``torch_convention``, ``pysaliency_call``, ``mean_value``), ``overall`` (``torch_s``,
    ``pysaliency_s``, ``speedup``, ``target_speedup``, ``meets_target``, ``max_abs_diff``), ``speedup_overall`` (the
    same overall speedup, top level), ``setup_s`` and ``seconds``. ``device``: torch device (default ``cuda`` when
    available, else ``cpu``); the torch side runs in batches of ``batch_size``; times are the best of ``repeats``."""
    start = time.perf_counter()
    pysaliency = _import_pysaliency()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    height, width = int(size[0]), int(size[1])

    preds, gts, points = make_inputs(n_maps, (height, width), seed, n_fixations)
    pred_t = torch.from_numpy(preds).to(dev)
    gt_t = torch.from_numpy(gts).to(dev)
    fix_t = M.fixations_to_map(points, height, width).to(dev)
    preds64, gts64 = preds.astype(np.float64), gts.astype(np.float64)
    stimuli = pysaliency.Stimuli(list(preds64))
    fixations = pysaliency.Fixations.create_without_history(
        np.concatenate([p[:, 0] for p in points]),
        np.concatenate([p[:, 1] for p in points]),
        np.concatenate([np.full(len(p), i) for i, p in enumerate(points)]),
    )
    model = _map_model(pysaliency)
    setup_s = time.perf_counter() - start

    def torch_side(name: str) -> Callable[[], np.ndarray]:
        fn, second = getattr(M, name), fix_t if name in ("nss", "auc_judd") else gt_t

        def run() -> np.ndarray:
            chunks = [
                fn(pred_t[i : i + batch_size], second[i : i + batch_size], convention=CONVENTION[name])
                for i in range(0, n_maps, batch_size)
            ]
            return torch.cat(chunks).cpu().numpy()

        return run

    psm = pysaliency.metrics
    pysaliency_side: dict[str, Callable[[], np.ndarray]] = {
        "cc": lambda: np.array([psm.CC(p, g) for p, g in zip(preds64, gts64, strict=True)]),
        "kl": lambda: np.array([psm.MIT_KLDiv(p, g) for p, g in zip(preds64, gts64, strict=True)]),
        "nss": lambda: np.array([psm.NSS(p, pt[:, 0], pt[:, 1]).mean() for p, pt in zip(preds64, points, strict=True)]),
        "sim": lambda: np.array([psm.SIM(p, g) for p, g in zip(preds64, gts64, strict=True)]),
        "auc_judd": lambda: np.asarray(
            model.AUC_per_image(stimuli, fixations, nonfixations="unfixated", thresholds="fixations")
        ),
    }

    results: dict[str, Any] = {}
    with _numpy_trapz():
        for name in METRICS:
            warm = min(
                batch_size, n_maps
            )  # first-call overheads (allocator, kernels) out of the measurement: one batch
            second = fix_t if name in ("nss", "auc_judd") else gt_t
            getattr(M, name)(pred_t[:warm], second[:warm], convention=CONVENTION[name])
            torch_s, ours = _timed(torch_side(name), repeats, sync)
            with np.errstate(divide="ignore"):  # MIT_KLDiv also takes (unused) logs of zero-valued densities
                pys_s, reference = _timed(pysaliency_side[name], repeats, lambda: None)
            results[name] = {
                "torch_s": torch_s,
                "pysaliency_s": pys_s,
                "speedup": pys_s / torch_s if torch_s > 0 else None,
                "max_abs_diff": float(np.max(np.abs(ours - reference))),
                "mean_value": float(np.mean(ours)),
                "torch_convention": CONVENTION[name],
                "pysaliency_call": PYSALIENCY_CALL[name],
            }
    torch_total = sum(r["torch_s"] for r in results.values())
    pys_total = sum(r["pysaliency_s"] for r in results.values())
    overall_speedup = pys_total / torch_total if torch_total > 0 else None
    return {
        "machine": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "pysaliency": getattr(pysaliency, "__version__", None),
            "device": str(dev),
            "torch_threads": torch.get_num_threads(),
        },
        "config": {
            "n_maps": n_maps,
            "size": [height, width],
            "seed": seed,
            "batch_size": batch_size,
            "n_fixations": n_fixations,
            "repeats": repeats,
            "inputs": "torch: float32 (B, H, W) maps + fixation maps on the device; pysaliency: float64 maps + x/y",
        },
        "metrics": results,
        "overall": {
            "torch_s": torch_total,
            "pysaliency_s": pys_total,
            "speedup": overall_speedup,
            "target_speedup": TARGET_SPEEDUP,
            "meets_target": bool(overall_speedup is not None and overall_speedup >= TARGET_SPEEDUP),
            "max_abs_diff": max(r["max_abs_diff"] for r in results.values()),
        },
        "speedup_overall": overall_speedup,
        "setup_s": setup_s,
        "seconds": time.perf_counter() - start,
    }
