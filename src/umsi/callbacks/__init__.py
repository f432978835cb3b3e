"""Training callbacks: step LR decay, best-checkpoint hand-off, prediction panels."""

from umsi.callbacks.handoff import BestCheckpointHandoff
from umsi.callbacks.lr import StepLRDecay
from umsi.callbacks.panels import PredictionPanel

__all__ = ["BestCheckpointHandoff", "PredictionPanel", "StepLRDecay"]
