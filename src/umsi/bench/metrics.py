"""Speed and agreement of the evaluation metrics (``umsi.metrics.functional``) against a per-image pysaliency loop
and against the previous implementation kept in ``umsi.metrics.reference``, on the same random smooth maps and
fixations; and the time of umsi-eval's per-image scoring (``umsi.evaluation.scoring.image_metrics``: every metric
under both conventions) with either implementation — "before" and "after" in one run.

Each side gets its native input: torch a batch of (B, H, W) float32 maps and (B, H, W) float32 fixation maps, as a
validation step has them (the data module's fixation maps are float32); pysaliency one (H, W) float64 map at a time
and the fixations as x/y coordinate arrays. The scoring gets what ``umsi-eval`` hands it per image: float32 maps,
float64 fixation and other-image fixation maps (``fixations_to_map``) and the centre-bias baseline. The fixations are
distinct pixels, so the binary (torch) and per-fixation (pysaliency) views agree, and the maps have minimum 0, so SIM
needs no min–max step; the conventions chosen per metric are the ones that equal pysaliency.

A second, independent input set (issue 27) is timed next to it the way an outside harness hands the maps over: maps
made another way (sums of random Gaussian blobs), umsi's metrics called once on the whole set (float32 (B, H, W) maps,
binary float32 fixation maps, ``convention="mit"`` for every metric), pysaliency per image; the result's
``independent`` entry, with its values checked against the previous implementation too.

Times are the best of ``repeats`` runs, the fast functions and pysaliency alternating; the previous implementation is
timed once (it is the slow "before"). The machine's load average is recorded with the numbers: on a shared machine
they move with it.

Run ``umsi-bench --parts metrics`` (``make bench ARGS="--parts metrics"``); pysaliency is a dev dependency.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from umsi.evaluation.scoring import ScoringSettings, image_metrics
from umsi.metrics import functional as M
from umsi.metrics import reference as R

__all__ = [
    "MIN_METRIC_SPEEDUP",
    "TARGET_SPEEDUP",
    "bench_metrics",
    "make_independent_inputs",
    "make_inputs",
    "metrics_table",
]

TARGET_SPEEDUP = {"cpu": 3.0, "cuda": 10.0}
"""The issue's targets: the metrics together at least this many times faster than the pysaliency loop, per device."""
MIN_METRIC_SPEEDUP = 1.0
"""... and no single metric slower than pysaliency."""
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
FIXATION_METRICS = ("nss", "auc_judd")


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


def _blobs(rng: np.random.Generator, size: tuple[int, int], count: int) -> np.ndarray:
    """(H, W) float64 sum of ``count`` random anisotropic Gaussian blobs (centres anywhere, widths 3–25 % of each
    side, weights 0.2–1), min–max scaled to [0, 1]."""
    height, width = size
    ys, xs = np.arange(height)[:, None], np.arange(width)[None, :]
    out = np.zeros(size)
    for _ in range(count):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        sy, sx = rng.uniform(0.03, 0.25) * height, rng.uniform(0.03, 0.25) * width
        out += rng.uniform(0.2, 1.0) * np.exp(-0.5 * ((ys - cy) / sy) ** 2) * np.exp(-0.5 * ((xs - cx) / sx) ** 2)
    out -= out.min()
    return out / max(float(out.max()), 1e-12)


def make_independent_inputs(
    n_maps: int, size: tuple[int, int], seed: int = 1, n_fixations: int = 100
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The issue's independent input set, made unlike :func:`make_inputs`: (predictions (B, H, W) float32, ground
    truth (B, H, W) float32, B point arrays (N, 2) of 0-based x, y). Predictions are smooth sums of Gaussian blobs in
    [0, 1] (minimum 0); the ground truth is half the prediction and half other blobs, rescaled to [0, 1];
    ``n_fixations`` distinct pixels per image are drawn with probability proportional to the ground truth."""
    rng = np.random.default_rng(seed)
    height, width = size
    preds, gts, points = [], [], []
    for _ in range(n_maps):
        pred = _blobs(rng, size, 8)
        gt = 0.5 * pred + 0.5 * _blobs(rng, size, 8)
        gt = (gt - gt.min()) / max(float(gt.max() - gt.min()), 1e-12)
        weights = gt.ravel()
        count = min(n_fixations, int(np.count_nonzero(weights)))
        flat = rng.choice(height * width, size=count, replace=False, p=weights / weights.sum())
        preds.append(pred.astype(np.float32))
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


def _race(contenders: dict[str, Callable[[], Any]], repeats: int, sync: Callable[[], None]) -> dict[str, Any]:
    """Best wall time of ``repeats`` rounds per contender, the contenders alternating within each round, and the
    last result of each: {name: (seconds, value)}."""
    best = dict.fromkeys(contenders, float("inf"))
    values: dict[str, Any] = {}
    for _ in range(max(1, repeats)):
        for name, fn in contenders.items():
            sync()
            start = time.perf_counter()
            values[name] = fn()
            sync()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: (best[name], values[name]) for name in contenders}


def _max_rel_diff(ours: np.ndarray, reference: np.ndarray) -> float:
    """Largest |ours − reference| / |reference| (the absolute difference where the reference is 0)."""
    scale = np.where(reference != 0, np.abs(reference), 1.0)
    return float(np.max(np.abs(ours - reference) / scale)) if reference.size else 0.0


def _bench_scoring(preds: np.ndarray, gts: np.ndarray, points: list[np.ndarray], n_maps: int) -> dict[str, Any]:
    """``image_metrics`` (what ``umsi-eval`` runs per image) over ``n_maps`` maps with the fast functions and with the
    previous ones, on the CPU as ``umsi-eval`` scores; each timed once, the fast side first."""
    height, width = preds.shape[1:]
    fixations = M.fixations_to_map(points[:n_maps], height, width)  # float64, as umsi-eval's scoring builds them
    others = M.other_image_fixations(fixations)
    baseline = M.center_bias_map(height, width)
    settings = ScoringSettings(progress=False)

    def run(functions: Any) -> list[dict[str, float]]:
        return [
            image_metrics(
                torch.from_numpy(preds[i]),
                torch.from_numpy(gts[i]),
                fixations[i],
                others[i],
                baseline,
                settings,
                functions=functions,
            )
            for i in range(n_maps)
        ]

    timed = _race({"fast": lambda: run(M), "reference": lambda: run(R)}, 1, lambda: None)
    (fast_s, fast), (reference_s, before) = timed["fast"], timed["reference"]
    keys = sorted(fast[0]) if fast else []
    diffs = {k: _max_rel_diff(np.array([r[k] for r in fast]), np.array([r[k] for r in before])) for k in keys}
    return {
        "n_maps": n_maps,
        "values_per_map": len(keys),
        "fast_s": fast_s,
        "reference_s": reference_s,
        "fast_ms_per_map": 1e3 * fast_s / max(n_maps, 1),
        "reference_ms_per_map": 1e3 * reference_s / max(n_maps, 1),
        "speedup": reference_s / fast_s if fast_s > 0 else None,
        "max_rel_diff": max(diffs.values(), default=0.0),
        "settings": {"borji_splits": settings.borji_splits, "borji_step": settings.borji_step, "seed": settings.seed},
    }


def _pysaliency_side(
    pysaliency: Any, preds: np.ndarray, gts: np.ndarray, points: list[np.ndarray]
) -> dict[str, Callable[[], np.ndarray]]:
    """Per metric, the per-image pysaliency loop over float64 maps and x/y fixation arrays (see ``PYSALIENCY_CALL``)."""
    preds64, gts64 = preds.astype(np.float64), gts.astype(np.float64)
    stimuli = pysaliency.Stimuli(list(preds64))
    fixations = pysaliency.Fixations.create_without_history(
        np.concatenate([p[:, 0] for p in points]),
        np.concatenate([p[:, 1] for p in points]),
        np.concatenate([np.full(len(p), i) for i, p in enumerate(points)]),
    )
    model = _map_model(pysaliency)
    psm = pysaliency.metrics
    return {
        "cc": lambda: np.array([psm.CC(p, g) for p, g in zip(preds64, gts64, strict=True)]),
        "kl": lambda: np.array([psm.MIT_KLDiv(p, g) for p, g in zip(preds64, gts64, strict=True)]),
        "nss": lambda: np.array([psm.NSS(p, pt[:, 0], pt[:, 1]).mean() for p, pt in zip(preds64, points, strict=True)]),
        "sim": lambda: np.array([psm.SIM(p, g) for p, g in zip(preds64, gts64, strict=True)]),
        "auc_judd": lambda: np.asarray(
            model.AUC_per_image(stimuli, fixations, nonfixations="unfixated", thresholds="fixations")
        ),
    }


def _overall(results: dict[str, dict[str, Any]], target: float) -> dict[str, Any]:
    """Totals of per-metric results: torch / pysaliency (/ previous) seconds, the overall speedup, the slowest metric
    and whether the targets hold (``target`` overall, every metric ≥ ``MIN_METRIC_SPEEDUP``)."""
    torch_total = sum(r["torch_s"] for r in results.values())
    pys_total = sum(r["pysaliency_s"] for r in results.values())
    speedup = pys_total / torch_total if torch_total > 0 else None
    slowest = min(results, key=lambda k: results[k]["speedup"] or 0.0)
    out = {"torch_s": torch_total, "pysaliency_s": pys_total, "speedup": speedup}
    if all("reference_s" in r for r in results.values()):
        out["reference_s"] = sum(r["reference_s"] for r in results.values())
    return {
        **out,
        "slowest_metric": slowest,
        "slowest_metric_speedup": results[slowest]["speedup"],
        "target_speedup": target,
        "min_metric_speedup": MIN_METRIC_SPEEDUP,
        "meets_target": bool(
            speedup is not None and speedup >= target and (results[slowest]["speedup"] or 0.0) >= MIN_METRIC_SPEEDUP
        ),
        "max_abs_diff": max(r["max_abs_diff"] for r in results.values()),
        "max_rel_diff_vs_reference": max(r["max_rel_diff_vs_reference"] for r in results.values()),
    }


def _bench_independent(
    pysaliency: Any,
    n_maps: int,
    size: tuple[int, int],
    n_fixations: int,
    repeats: int,
    dev: torch.device,
    sync: Callable[[], None],
    target: float,
) -> dict[str, Any]:
    """The independent input set (:func:`make_independent_inputs`): umsi's metrics once on the whole batch,
    ``convention="mit"``, binary float32 fixation maps; pysaliency per image; alternated round by round. Values are
    checked against the previous implementation (run in batches of 32, untimed) and against pysaliency (NSS differs
    by the N − 1 vs N standard deviation, ~1e-6)."""
    height, width = size
    preds, gts, points = make_independent_inputs(n_maps, size, n_fixations=n_fixations)
    pred_t, gt_t = torch.from_numpy(preds).to(dev), torch.from_numpy(gts).to(dev)
    fix_t = M.fixations_to_map(points, height, width).float().to(dev)  # binary: the fixated pixels are distinct
    pysaliency_side = _pysaliency_side(pysaliency, preds, gts, points)
    results: dict[str, Any] = {}
    with _numpy_trapz(), np.errstate(divide="ignore"):
        for name in METRICS:
            fn, second = getattr(M, name), fix_t if name in FIXATION_METRICS else gt_t
            reference = getattr(R, name)
            timed = _race(
                {
                    "torch": lambda fn=fn, second=second: fn(pred_t, second, convention="mit").cpu().numpy(),
                    "pysaliency": pysaliency_side[name],
                },
                repeats,
                sync,
            )
            (torch_s, ours), (pys_s, expected) = timed["torch"], timed["pysaliency"]
            before = np.concatenate(
                [
                    reference(pred_t[i : i + 32], second[i : i + 32], convention="mit").cpu().numpy()
                    for i in range(0, n_maps, 32)
                ]
            )
            results[name] = {
                "torch_s": torch_s,
                "pysaliency_s": pys_s,
                "speedup": pys_s / torch_s if torch_s > 0 else None,
                "max_abs_diff": float(np.max(np.abs(ours - expected))),
                "max_rel_diff_vs_reference": _max_rel_diff(ours, before),
                "mean_value": float(np.mean(ours)),
                "torch_convention": "mit",
                "pysaliency_call": PYSALIENCY_CALL[name],
            }
    return {
        "config": {
            "n_maps": n_maps,
            "size": [height, width],
            "n_fixations": n_fixations,
            "batch_size": n_maps,
            "inputs": "sums of Gaussian blobs; torch: one call on float32 (B, H, W) maps + binary float32 fixation "
            "maps, convention='mit'; pysaliency: float64 maps + x/y, per image",
        },
        "metrics": results,
        "overall": _overall(results, target),
    }


def bench_metrics(
    n_maps: int = 100,
    size: Sequence[int] = (480, 640),
    seed: int = 0,
    *,
    device: str | None = None,
    batch_size: int = 32,
    n_fixations: int = 100,
    repeats: int = 3,
    scoring_maps: int | None = None,
    independent: bool = True,
) -> dict[str, Any]:
    """Time cc, kl, nss, sim and auc_judd three ways on ``n_maps`` maps of ``size`` and the per-image scoring of
    ``scoring_maps`` of them (default all; 0 skips it) two ways; return a JSON-serialisable dict:

    * ``metrics``: per metric ``torch_s`` (fast), ``reference_s`` (previous), ``pysaliency_s``, ``speedup``
      (pysaliency / fast), ``speedup_vs_reference``, ``max_abs_diff`` (fast vs pysaliency),
      ``max_rel_diff_vs_reference`` (the 1e-6 contract), ``mean_value``, ``torch_convention``, ``pysaliency_call``;
    * ``overall``: the same totals, ``slowest_metric`` and its speedup, ``target_speedup`` (3 on a CPU, 10 on a GPU),
      ``min_metric_speedup`` (1) and ``meets_target`` (both); ``speedup_overall`` repeats the overall speedup;
    * ``independent`` (with ``independent``): ``config``, ``metrics`` and ``overall`` of the same kind for the
      independent input set (:func:`_bench_independent`), else None; ``meets_target_on_both``;
    * ``scoring``: ``fast_s``, ``reference_s``, per-map milliseconds, ``speedup``, ``max_rel_diff``;
    * ``machine``, ``config``, ``load_average`` (1-minute load before and after), ``setup_s``, ``seconds``.

    ``device``: torch device (default ``cuda`` when available, else ``cpu``); the torch sides run in batches of
    ``batch_size`` (the independent set: all maps in one call); times are the best of ``repeats`` (the reference
    once)."""
    start = time.perf_counter()
    load_before = os.getloadavg()[0]
    pysaliency = _import_pysaliency()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    height, width = int(size[0]), int(size[1])
    target = TARGET_SPEEDUP.get(dev.type, TARGET_SPEEDUP["cpu"])

    preds, gts, points = make_inputs(n_maps, (height, width), seed, n_fixations)
    pred_t = torch.from_numpy(preds).to(dev)
    gt_t = torch.from_numpy(gts).to(dev)
    fix_t = M.fixations_to_map(points, height, width).float().to(dev)
    pysaliency_side = _pysaliency_side(pysaliency, preds, gts, points)
    setup_s = time.perf_counter() - start

    def batched(functions: Any, name: str) -> Callable[[], np.ndarray]:
        fn, second = getattr(functions, name), fix_t if name in FIXATION_METRICS else gt_t

        def run() -> np.ndarray:
            chunks = [
                fn(pred_t[i : i + batch_size], second[i : i + batch_size], convention=CONVENTION[name])
                for i in range(0, n_maps, batch_size)
            ]
            return torch.cat(chunks).cpu().numpy()

        return run

    results: dict[str, Any] = {}
    with _numpy_trapz(), np.errstate(divide="ignore"):  # MIT_KLDiv also takes (unused) logs of zero densities
        for name in METRICS:
            timed = _race({"torch": batched(M, name), "pysaliency": pysaliency_side[name]}, repeats, sync)
            reference_s, before = _race({"reference": batched(R, name)}, 1, sync)["reference"]
            (torch_s, ours), (pys_s, expected) = timed["torch"], timed["pysaliency"]
            results[name] = {
                "torch_s": torch_s,
                "reference_s": reference_s,
                "pysaliency_s": pys_s,
                "speedup": pys_s / torch_s if torch_s > 0 else None,
                "speedup_vs_reference": reference_s / torch_s if torch_s > 0 else None,
                "max_abs_diff": float(np.max(np.abs(ours - expected))),
                "max_rel_diff_vs_reference": _max_rel_diff(ours, before),
                "mean_value": float(np.mean(ours)),
                "torch_convention": CONVENTION[name],
                "pysaliency_call": PYSALIENCY_CALL[name],
            }
    del pysaliency_side
    scoring = _bench_scoring(preds, gts, points, n_maps if scoring_maps is None else min(scoring_maps, n_maps))
    other = (
        _bench_independent(pysaliency, n_maps, (height, width), n_fixations, repeats, dev, sync, target)
        if independent
        else None
    )
    overall = _overall(results, target)
    return {
        "machine": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "pysaliency": getattr(pysaliency, "__version__", None),
            "device": str(dev),
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
        },
        "config": {
            "n_maps": n_maps,
            "size": [height, width],
            "seed": seed,
            "batch_size": batch_size,
            "n_fixations": n_fixations,
            "repeats": repeats,
            "inputs": "torch: float32 (B, H, W) maps + float32 fixation maps on the device; "
            "pysaliency: float64 maps + x/y",
        },
        "metrics": results,
        "overall": overall,
        "independent": other,
        "meets_target_on_both": bool(overall["meets_target"] and (other is None or other["overall"]["meets_target"])),
        "scoring": scoring,
        "speedup_overall": overall["speedup"],
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        "setup_s": setup_s,
        "seconds": time.perf_counter() - start,
    }


def metrics_table(result: dict[str, Any]) -> str:
    """A :func:`bench_metrics` result as Markdown: per metric and overall (milliseconds for all maps), the scoring
    before/after and the load it ran under."""
    lines = [
        "| metric | this (ms) | before (ms) | pysaliency (ms) | × pysaliency | × before | max diff vs pysaliency |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = [*result["metrics"].items(), ("overall", result["overall"])]
    for name, r in rows:
        lines.append(
            f"| {name} | {1e3 * r['torch_s']:.0f} | {1e3 * r['reference_s']:.0f} | {1e3 * r['pysaliency_s']:.0f} | "
            f"{r['speedup']:.2f} | {r['reference_s'] / r['torch_s']:.1f} | {r['max_abs_diff']:.1e} |"
        )
    s = result["scoring"]
    if s["n_maps"]:
        lines += [
            "",
            f"umsi-eval scoring ({s['n_maps']} maps, {s['values_per_map']} values each): "
            f"{s['fast_s']:.2f} s now, {s['reference_s']:.2f} s before ({s['speedup']:.1f}×); "
            f"largest relative difference {s['max_rel_diff']:.1e}.",
        ]
    o, load = result["overall"], result["load_average"]
    other = result.get("independent")
    if other:
        c = other["config"]
        lines += [
            "",
            f"Independent input set ({c['n_maps']} maps of {c['size'][0]}×{c['size'][1]}, {c['n_fixations']} distinct "
            "fixated pixels each; umsi once on the whole batch, float32 maps and binary fixation maps, "
            "convention='mit'; pysaliency per image):",
            "",
            "| metric | this (ms) | pysaliency (ms) | × pysaliency | max diff vs pysaliency | rel. diff vs before |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, r in [*other["metrics"].items(), ("overall", other["overall"])]:
            lines.append(
                f"| {name} | {1e3 * r['torch_s']:.0f} | {1e3 * r['pysaliency_s']:.0f} | {r['speedup']:.2f} | "
                f"{r['max_abs_diff']:.1e} | {r['max_rel_diff_vs_reference']:.1e} |"
            )
        io = other["overall"]
        lines += [
            "",
            f"Independent set: overall {io['speedup']:.2f}×, slowest metric {io['slowest_metric']} "
            f"{io['slowest_metric_speedup']:.2f}× ({'met' if io['meets_target'] else 'not met'}).",
        ]
    lines += [
        "",
        f"Overall {o['speedup']:.2f}× pysaliency, slowest metric {o['slowest_metric']} "
        f"{o['slowest_metric_speedup']:.2f}× (target {o['target_speedup']:.0f}× overall and every metric ≥ "
        f"{o['min_metric_speedup']:.0f}×: {'met' if o['meets_target'] else 'not met'}); largest relative difference "
        f"to the previous implementation {o['max_rel_diff_vs_reference']:.1e}. Torch threads "
        f"{result['machine']['torch_threads']}, 1-minute load average {load['before']:.1f} → {load['after']:.1f} on "
        f"{result['machine']['cpu_count']} cores.",
    ]
    return "\n".join(lines)
