"""UMSI: Unified Model of Saliency and Importance — training framework on PyTorch Lightning + Hydra."""

import os

# albumentations otherwise asks PyPI for a newer version at import time; runs here are offline.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# PyTorch's OpenMP (libgomp) threads otherwise busy-wait up to ~3 ms at every barrier (GOMP_SPINCOUNT 300000).
# When other processes share the cores, that waiting burns the time slices the other thread needs: 2-thread CPU
# inference measured 3-5× slower on a loaded 2-core machine (docs/performance.md). 1000 spins (~10 µs) is what
# libgomp itself uses once it knows the cores are oversubscribed; it cannot see other processes' load. Read once,
# when torch loads libgomp: effective when umsi is imported before torch. Set GOMP_SPINCOUNT to choose otherwise.
os.environ.setdefault("GOMP_SPINCOUNT", "1000")


def load(path: "str | os.PathLike", device: str = "cpu", precision: str = "32"):
    """A ready ``umsi.inference.predictor.Predictor`` from a training checkpoint, converted official weights or
    an exported ``.onnx`` / ``.ts`` file: ``umsi.load(path).predict(images)``."""
    from umsi.inference.predictor import load as _load

    return _load(path, device=device, precision=precision)
