"""Training callbacks: step LR decay, best-checkpoint hand-off, prediction panels, throughput, non-finite guard,
RNG state in checkpoints, the whole run's progress row."""

from umsi.callbacks.guard import NonFiniteGuard, NonFiniteLossError
from umsi.callbacks.handoff import BestCheckpointHandoff
from umsi.callbacks.lr import StepLRDecay
from umsi.callbacks.panels import PredictionPanel
from umsi.callbacks.progress import RunProgress, RunProgressBar, StagePlan
from umsi.callbacks.rng import RngStateCheckpoint
from umsi.callbacks.throughput import EpochThroughput

__all__ = [
    "BestCheckpointHandoff",
    "EpochThroughput",
    "NonFiniteGuard",
    "NonFiniteLossError",
    "PredictionPanel",
    "RngStateCheckpoint",
    "RunProgress",
    "RunProgressBar",
    "StagePlan",
    "StepLRDecay",
]
