"""Training callbacks: step LR decay, best-checkpoint hand-off, prediction panels, throughput."""

from umsi.callbacks.handoff import BestCheckpointHandoff
from umsi.callbacks.lr import StepLRDecay
from umsi.callbacks.panels import PredictionPanel
from umsi.callbacks.throughput import EpochThroughput

__all__ = ["BestCheckpointHandoff", "EpochThroughput", "PredictionPanel", "StepLRDecay"]
