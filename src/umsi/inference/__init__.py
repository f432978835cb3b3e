"""Inference and deployment: ``umsi.load`` / ``Predictor``, ``umsi-predict``, ``umsi-export``."""
