"""Evaluation: loading trained or converted models, scoring datasets at the ground-truth resolution, and the
report in the paper's format (``umsi-eval``)."""

from umsi.evaluation.loading import LoadedModel, find_latest_checkpoint, load_model

__all__ = ["LoadedModel", "find_latest_checkpoint", "load_model"]
