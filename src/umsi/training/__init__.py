"""Training: the LightningModule, the evaluation loop and the stage/pipeline runners."""

from umsi.training.module import UMSILitModule

__all__ = ["UMSILitModule"]
