"""Reading and writing model files: training checkpoints (crash-safe saves, weights-only loads), converted official
weights and the Keras ``.h5`` (through :mod:`umsi.official`), exported ONNX / TorchScript files, and finding the
newest run's checkpoint. Below ``training``, ``evaluation`` and ``inference``, which all load through here."""

from umsi.checkpoints.loading import LoadedModel, find_latest_checkpoint, load_model, resolve_checkpoint

__all__ = ["LoadedModel", "find_latest_checkpoint", "load_model", "resolve_checkpoint"]
