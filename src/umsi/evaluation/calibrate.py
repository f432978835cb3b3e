"""What ``umsi-calibrate`` does: fit one domain's calibration (:mod:`umsi.calibration`) of a model on n images of a
registered dataset, network frozen, and check it on held-out images of the same dataset.

The images of ``part`` are shuffled with ``seed``; the first ``n`` are fitted, the next ``held_out`` are scored
before and after: CC and KL (MIT convention) against the ground-truth maps where the dataset has maps, and the
log-likelihood of the fixations in bits per fixation over a uniform density where it has fixations. The domain
defaults to the class the class head predicts most often on the n images, so ``calibration=auto`` picks it for
such images later.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from umsi.calibration import Calibration, apply_calibration, fit_calibration, log_density
from umsi.data.check import layout_kind
from umsi.data.fixations import read_fixations
from umsi.data.readers import read_map
from umsi.data.registry import DatasetItem, find_items
from umsi.errors import ConfigError
from umsi.inference.predictor import Predictor
from umsi.metrics import functional as M
from umsi.metrics.probabilistic import log_likelihood

log = logging.getLogger(__name__)
OBJECTIVES = ("auto", "fixations", "maps")


@dataclass
class Sample:
    """One image's cached prediction and ground truth: heatmap (H, W) in [0, 1] at the image's size, the predicted
    class, the ground-truth map resized to (H, W) (None without a map) and the (N, 2) (x, y) fixations at (H, W)
    (None without fixations)."""

    name: str
    heatmap: np.ndarray
    label: str
    target: np.ndarray | None
    points: np.ndarray | None


def dataset_items(data: Mapping[str, Any], part: str) -> list[DatasetItem]:
    """The items of a registered dataset's ``part`` (train | val | all). Raises ``ConfigError`` naming the dataset
    when the tree has errors or the part is empty."""
    # keys that interpolate training-only values (data.output_scale → model.*) are not needed to find items
    options = {key: OmegaConf.select(data, str(key), throw_on_resolution_failure=False) for key in data}
    found = find_items(layout_kind(data), options["root"], options)
    found.raise_errors("data.root")
    items = found.items if part == "all" else found.part(part)
    if not items:
        raise ConfigError(f"{found.name} at {found.root} has no '{part}' images: pass part=train|val|all")
    return items


def predict_samples(predictor: Predictor, items: Sequence[DatasetItem], progress: bool = True) -> list[Sample]:
    """Predict every item once (no calibration) and read its ground truth at the image's size."""
    samples = []
    for item in tqdm(items, desc="predicting", unit="image", disable=not progress):
        prediction = predictor.predict(item.image)
        height, width = prediction.heatmap.shape
        target = None
        if item.saliency is not None:
            target = read_map(item.saliency).astype(np.float64)
            if target.shape != (height, width):  # maps saved at another size than the image
                target = cv2.resize(target, (width, height), interpolation=cv2.INTER_AREA)
        points = item.points
        if points is None and item.fixations is not None:
            points = read_fixations(item.fixations, (height, width))
        samples.append(Sample(item.key or item.image.stem, prediction.heatmap, prediction.label, target, points))
    return samples


def held_out_scores(samples: Sequence[Sample], calibration: Calibration | None) -> dict[str, float]:
    """Mean CC and KL (MIT) against the maps and the fixations' log-likelihood (bits per fixation over uniform)
    of ``samples`` with ``calibration`` applied (None: as predicted)."""
    scores: dict[str, list[float]] = {"cc": [], "kl": [], "log_likelihood": []}
    for sample in samples:
        heatmap = apply_calibration(sample.heatmap, calibration)
        if sample.target is not None:
            pred, target = torch.from_numpy(heatmap)[None].double(), torch.from_numpy(sample.target)[None]
            scores["cc"].append(float(M.cc(pred, target, convention="mit")[0]))
            scores["kl"].append(float(M.kl(pred, target, convention="mit")[0]))
        if sample.points is not None and len(sample.points):
            scores["log_likelihood"].append(log_likelihood(log_density(heatmap), sample.points))
    return {key: float(np.mean(values)) for key, values in scores.items() if values}


def calibrate_samples(
    samples: Sequence[Sample], n: int, held_out: int, objective: str = "auto", domain: str | None = None
) -> tuple[str, Calibration]:
    """Fit on ``samples[:n]``, score ``samples[n : n + held_out]`` before and after; → (domain, calibration).
    Raises ``ConfigError`` when the fit images lack what ``objective`` needs."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective={objective!r}: choose one of {OBJECTIVES}")
    fit, check = list(samples[:n]), list(samples[n : n + held_out])
    with_points = all(s.points is not None and len(s.points) for s in fit)
    with_maps = all(s.target is not None for s in fit)
    if objective == "auto":
        objective = "fixations" if with_points else "maps"
    if (objective == "fixations" and not with_points) or (objective == "maps" and not with_maps):
        raise ConfigError(f"objective={objective}: some of the {len(fit)} images have no {objective}")
    start = time.perf_counter()
    calibration = fit_calibration(
        [s.heatmap for s in fit],
        fixations=[s.points for s in fit] if objective == "fixations" else None,
        targets=[s.target for s in fit] if objective == "maps" else None,
        names=[s.name for s in fit],
    )
    seconds = time.perf_counter() - start
    if domain is None:
        domain, count = Counter(s.label for s in fit).most_common(1)[0]
        log.info(
            "domain %r: the class head's answer on %d of the %d images (pass domain=... to choose)",
            domain,
            count,
            len(fit),
        )
    scores: dict[str, Any] = {"n": len(check), "fit_seconds": round(seconds, 3)}
    if check:
        scores |= {"before": held_out_scores(check, None), "after": held_out_scores(check, calibration)}
    return domain, replace(calibration, scores=scores)


def format_calibration(domain: str, calibration: Calibration) -> str:
    """A few lines for the terminal: the parameters and the held-out before/after scores."""
    lines = [
        f"calibration[{domain}]: sigma {calibration.sigma:.4f} of the longer side, centre-bias weight "
        f"{calibration.center_bias:.3f}, exponent {calibration.exponent:.3f} ({calibration.objective}, "
        f"n={calibration.n_images}, fitted in {calibration.scores.get('fit_seconds', 0):.2f} s)"
    ]
    before, after = calibration.scores.get("before", {}), calibration.scores.get("after", {})
    for key in before:
        better = "higher" if key in ("cc", "log_likelihood") else "lower"
        lines.append(
            f"  held-out {key} ({better} is better, n={calibration.scores['n']}): {before[key]:.4f} -> {after[key]:.4f}"
        )
    return "\n".join(lines)


def shuffled(items: Sequence[DatasetItem], seed: int) -> list[DatasetItem]:
    """``items`` in a seeded random order (the fit and held-out images of a run)."""
    order = np.random.default_rng(seed).permutation(len(items))
    return [items[i] for i in order]


def calibrate_from_config(cfg: Any) -> tuple[str, Calibration]:
    """What ``umsi-calibrate`` does with its config (conf/calibrate.yaml): load the model (a file, run folder or
    ``latest``), draw ``n + held_out`` images of ``data``'s ``part`` with ``seed``, predict them once, fit, score the
    held-out images, store ``calibration.<domain>`` in the model file's card (``output``, default the file itself)
    and print the result. Raises the project's user errors (one line naming the key)."""
    from umsi.checkpoints.loading import resolve_checkpoint, store_calibration
    from umsi.inference.predictor import load

    if int(cfg.n) < 1 or int(cfg.held_out) < 0:
        raise ConfigError(f"n={cfg.n}, held_out={cfg.held_out}: fit on at least 1 image, score 0 or more")
    if str(cfg.part) not in ("train", "val", "all"):
        raise ConfigError(f"part={cfg.part}: choose train, val or all")
    checkpoint = resolve_checkpoint(cfg)
    predictor = load(checkpoint)
    items = shuffled(dataset_items(cfg.data, str(cfg.part)), int(cfg.seed))
    if len(items) < int(cfg.n):
        raise ConfigError(f"n={cfg.n}: the dataset's '{cfg.part}' part has only {len(items)} images")
    samples = predict_samples(predictor, items[: int(cfg.n) + int(cfg.held_out)], bool(cfg.progress))
    domain, calibration = calibrate_samples(samples, int(cfg.n), int(cfg.held_out), str(cfg.objective), cfg.domain)
    card = store_calibration(checkpoint, domain, calibration.to_dict(), cfg.output)
    print(format_calibration(domain, calibration))
    print(
        f"stored as calibration.{domain} in {cfg.output or checkpoint} (domains: {', '.join(sorted(card.calibration))})"
    )
    return domain, calibration
