"""Measures of a probabilistic saliency model: the log-likelihood of fixations under a log-density and the
information gain over a baseline (Kümmerer, Wallis & Bethge, PNAS 2015; pysaliency's ``log_likelihoods`` and
``information_gain``, average per image).

A log-density is an (H, W) array of natural logs summing (after exp) to 1 over the image; fixations are (N, 2)
arrays of 0-based (x, y) pixel coordinates, truncated to int as pysaliency's ``x_int``/``y_int``; every fixation
counts (duplicates included), as in pysaliency.
"""

from __future__ import annotations

import math

import numpy as np


def _fixated(log_density: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    xs, ys = points[:, 0].astype(int), points[:, 1].astype(int)
    height, width = log_density.shape
    if len(points) and (xs.min() < 0 or ys.min() < 0 or xs.max() >= width or ys.max() >= height):
        raise ValueError(f"fixation outside the {height}×{width} map: give 0-based (x, y) pixels inside it")
    return log_density[ys, xs]


def log_likelihood(log_density: np.ndarray, points: np.ndarray) -> float:
    """Mean log-likelihood of the fixations in bits per fixation, relative to the uniform density over the image
    (pysaliency ``Model.log_likelihoods`` averaged per image). 0.0 for an image without fixations."""
    values = _fixated(log_density, points)
    if not len(values):
        return 0.0
    return float((values.mean() + math.log(log_density.size)) / math.log(2))


def information_gain(log_density: np.ndarray, baseline_log_density: np.ndarray, points: np.ndarray) -> float:
    """Information gain of a log-density over a baseline log-density of the same (H, W) shape, in bits per
    fixation: mean over fixations of (log p − log b) / ln 2 (pysaliency ``information_gain``, average per image).
    0.0 for an image without fixations. Raises ``ValueError`` for shapes that differ or fixations outside."""
    if log_density.shape != baseline_log_density.shape:
        raise ValueError(f"log-density {log_density.shape} and baseline {baseline_log_density.shape} differ in shape")
    gain = _fixated(log_density, points) - _fixated(baseline_log_density, points)
    return float(gain.mean() / math.log(2)) if len(gain) else 0.0
