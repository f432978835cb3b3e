"""UMSI: Unified Model of Saliency and Importance — training framework on PyTorch Lightning + Hydra."""

import os

# albumentations otherwise asks PyPI for a newer version at import time; runs here are offline.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def load(path: "str | os.PathLike", device: str = "cpu", precision: str = "32"):
    """A ready ``umsi.inference.predictor.Predictor`` from a training checkpoint, converted official weights or
    an exported ``.onnx`` / ``.ts`` file: ``umsi.load(path).predict(images)``."""
    from umsi.inference.predictor import load as _load

    return _load(path, device=device, precision=precision)


def create_model(name: str, **kwargs):
    """The registered architecture ``name`` (``umsi``, ``umsi_official``, ``umsi_xception41`` …) with random
    weights, built with ``kwargs`` (its constructor arguments): ``umsi.models.registry.create_model``."""
    from umsi.models.registry import create_model as _create_model

    return _create_model(name, **kwargs)
