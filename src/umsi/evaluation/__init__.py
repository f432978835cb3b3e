"""Evaluation (``umsi-eval``): scoring datasets at the ground-truth resolution and the report in the paper's
format. Loading models lives in :mod:`umsi.checkpoints`."""
