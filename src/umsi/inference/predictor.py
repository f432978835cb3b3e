"""``umsi.load(path)`` → ``Predictor``: heatmaps at each image's own size plus class probabilities.

Preprocessing and post-processing are the official ones (umsi-reference §3): BGR, letterbox to the network input,
Caffe-mean subtraction; the map (twice the input size) is optionally blurred, then un-letterboxed to the image's
original size and min–max scaled to [0, 1].
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image

from umsi.calibration import Calibration, apply_calibration, card_calibrations, choose_calibration, log_density
from umsi.data.postprocess import postprocess_maps
from umsi.data.readers import read_image_bgr
from umsi.data.transforms import check_result_shape, letterbox, normalize_image
from umsi.inference.fold import fold_batchnorm
from umsi.inference.packed import pack_convolutions
from umsi.models.card import ModelCard, Preprocessing, get_preprocessing
from umsi.models.umsi import UMSIOutput

ImageInput = Union[str, Path, Image.Image, np.ndarray]  # noqa: UP007 (a runtime alias)
EXPORTED_SUFFIXES = (".onnx", ".ts", ".torchscript")
PRECISIONS = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}
# Images per network call on the CPU, by precision. Layer by layer, a batch of 8 makes every activation 8× larger
# (the 30×40×728 middle-flow maps 28 MB instead of 3.5 MB in float32), so each op streams it from memory instead of
# cache and the per-image cost grows with the batch (docs/performance.md): float32 runs image by image, the 16-bit
# precisions, whose activations are half as large, two images at a time (7 % less time per image in bf16 than
# one by one; in float32 two and one are within 1 %).
CPU_CHUNK_SIZES = {"32": 1, "bf16": 2, "16": 2}


@dataclass
class Prediction:
    """heatmap: (H, W) float32 in [0, 1] at the input image's size; probabilities: (K,) summing to 1."""

    heatmap: np.ndarray
    probabilities: np.ndarray
    class_names: list[str]

    @property
    def label(self) -> str:
        """The most probable class."""
        return self.class_names[int(self.probabilities.argmax())]

    def log_density(self) -> np.ndarray:
        """(H, W) float64 natural-log density of the fixations at the image's own size, logsumexp 0: the heatmap
        (already calibrated when a calibration was applied) normalised to sum 1, floored at
        ``umsi.calibration.DENSITY_FLOOR`` × uniform — what pysaliency's probabilistic models and the MIT/Tübingen
        benchmark take."""
        return log_density(self.heatmap)


def as_bgr(image: ImageInput) -> np.ndarray:
    """A file path, PIL image or NumPy array → (H, W, 3) uint8 BGR.

    Arrays are taken as RGB(A) or grayscale, the way PIL and most libraries hand them out: uint8 as is, uint16
    scaled by 1/257, floats as [0, 1]. PIL images of any mode (L, P, RGBA, CMYK, I;16 …) are converted to RGB.
    """
    if isinstance(image, str | Path):
        return read_image_bgr(Path(image))
    if isinstance(image, Image.Image):
        if image.mode.startswith("I"):  # 16/32-bit integer: scale to 8 bits like OpenCV does
            image = Image.fromarray(_to_uint8(np.asarray(image)))
        return np.ascontiguousarray(np.asarray(image.convert("RGB"))[..., ::-1])
    if isinstance(image, np.ndarray):
        array = _to_uint8(image)
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
            raise ValueError(f"image array of shape {image.shape}: expected (H, W), (H, W, 3) or (H, W, 4)")
        if array.shape[2] == 1:
            array = np.repeat(array, 3, axis=2)
        return np.ascontiguousarray(array[..., 2::-1])  # RGB(A) → BGR, alpha dropped
    raise TypeError(f"cannot predict on {type(image).__name__}: give a path, a PIL image or a NumPy array")


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return (array.astype(np.float32) / 257.0).round().astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        return (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        return np.clip(array, 0, 255).astype(np.uint8)
    raise ValueError(f"image array of dtype {array.dtype} is not supported")


def min_max(saliency: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; a constant map becomes all zeros."""
    low, high = float(saliency.min()), float(saliency.max())
    return ((saliency - low) / (high - low)).astype(np.float32) if high > low else np.zeros_like(saliency)


class Predictor:
    """A ready model: ``predict(images)`` → ``Prediction`` (one image) or a list (several).

    ``network`` maps a (B, 3, h, w) float32 batch, preprocessed for ``preprocessing`` at ``input_size``, to
    ``UMSIOutput`` — a PyTorch module, or an exported ONNX / TorchScript model. :meth:`from_card` takes the
    class names, input size, preprocessing and name from a model card (what :func:`load` does).
    """

    def __init__(
        self,
        network: Callable[[torch.Tensor], UMSIOutput],
        class_names: Sequence[str],
        input_size: tuple[int, int],
        preprocessing: str | Preprocessing = "official",
        name: str = "umsi",
        device: str = "cpu",
        precision: str = "32",
        chunk_size: int | None = None,
        calibrations: dict[str, Calibration] | None = None,
    ) -> None:
        if str(precision) not in PRECISIONS:
            raise ValueError(f"precision={precision!r}: choose one of {list(PRECISIONS)}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size={chunk_size}: give a positive number of images, or None")
        self.network = network
        self.class_names = list(class_names)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.preprocessing = get_preprocessing(preprocessing)
        self.name = name
        self.card: ModelCard | None = None
        self.device = torch.device(device)
        self.precision = str(precision)
        self.chunk_size = chunk_size or (CPU_CHUNK_SIZES[self.precision] if self.device.type == "cpu" else None)
        self.calibrations = dict(calibrations or {})
        self.memory_format = torch.contiguous_format
        if self.device.type == "cpu" and isinstance(network, torch.nn.Module):
            # oneDNN convolutions run on NHWC without reordering each activation: 10-15 % less time per image on
            # the CPU (docs/performance.md), the same maps to float rounding
            self.memory_format = torch.channels_last
            network.to(memory_format=torch.channels_last)

    @classmethod
    def from_card(
        cls,
        network: Callable[[torch.Tensor], UMSIOutput],
        card: ModelCard,
        device: str = "cpu",
        precision: str = "32",
        name: str | None = None,
    ) -> Predictor:
        """A predictor fed, named and calibrated as ``card`` says (``name`` replaces the card's display name)."""
        calibrations = card_calibrations(card.calibration)
        predictor = cls(
            network,
            card.class_names,
            card.input_size,
            card.preprocessing,
            name or card.name,
            device,
            precision,
            calibrations=calibrations,
        )
        predictor.card = card
        return predictor

    @property
    def default_batch_size(self) -> int:
        """Images per ``predict`` batch when none is given: ``chunk_size`` on the CPU (the images the network runs
        at a time there anyway), 16 on a GPU."""
        return (self.chunk_size or 1) if self.device.type == "cpu" else 16

    def preprocess(self, image_bgr: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 BGR → (3, h, w) float32 network input (letterboxed)."""
        return normalize_image(letterbox(image_bgr, self.input_size), self.preprocessing)

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = PRECISIONS[self.precision]
        if dtype is None or not isinstance(self.network, torch.nn.Module):
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, h, w) preprocessed → (maps (B, sh, sw) float32, probabilities (B, K)) on the CPU.

        The network sees ``chunk_size`` images per call (all B when None; on the CPU by default 1 in float32 and 2
        in bf16 / fp16, see ``CPU_CHUNK_SIZES``). In eval mode every image is computed independently, so chunking
        changes no value."""
        step = self.chunk_size or len(batch)
        maps, probabilities = [], []
        with torch.inference_mode(), self._autocast():
            for chunk in batch.split(step):
                out = self.network(chunk.to(self.device, memory_format=self.memory_format))
                maps.append(out.saliency.float()[:, 0].cpu())
                probabilities.append(out.logits.float().softmax(dim=1).cpu())
        return torch.cat(maps), torch.cat(probabilities)

    def postprocess(
        self,
        maps: torch.Tensor,
        probabilities: torch.Tensor,
        sizes: Sequence[tuple[int, int]],
        blur_sigma: float | None,
        calibration: str = "none",
    ) -> list[Prediction]:
        """Network maps (B, sh, sw) → predictions at each original (H, W): blur σ (output pixels), un-letterbox,
        min–max scale (``umsi.data.postprocess.postprocess_maps``, then :func:`min_max`), then the ``calibration``
        (none | auto | a domain: :meth:`calibration_for`) of each image's predicted class."""
        heatmaps = postprocess_maps(maps, sizes, blur_sigma)
        predictions = [
            Prediction(min_max(m), p.numpy(), self.class_names) for m, p in zip(heatmaps, probabilities, strict=True)
        ]
        for prediction in predictions:
            chosen = self.calibration_for(calibration, prediction.label)
            if chosen is not None:
                prediction.heatmap = apply_calibration(prediction.heatmap, chosen)
        return predictions

    def predict(
        self,
        images: ImageInput | Sequence[ImageInput],
        batch_size: int | None = None,
        blur_sigma: float | None = None,
        calibration: str = "none",
    ) -> Prediction | list[Prediction]:
        """Heatmaps and class probabilities for one image or a sequence of paths / PIL images / arrays.
        ``batch_size`` None: :attr:`default_batch_size`. ``calibration``: ``"none"`` (the map as trained), a domain
        of ``self.calibrations``, or ``"auto"`` (each image gets the calibration of its predicted class; a class
        without one, the mean of the fitted domains). Raises ``ValueError`` for a domain the model has no
        calibration for, and :class:`~umsi.data.transforms.ImageShapeError` naming the image (its path, or its
        position) when its heatmap cannot be made at its own size (:func:`~umsi.data.transforms.check_result_shape`)."""
        self.calibration_for(calibration, None)  # refuse an unknown domain before any work
        single = isinstance(images, str | Path | Image.Image | np.ndarray)
        items = [images] if single else list(images)
        batch_size = batch_size or self.default_batch_size
        results: list[Prediction] = []
        for start in range(0, len(items), batch_size):
            bgr = [as_bgr(image) for image in items[start : start + batch_size]]
            for number, (image, array) in enumerate(zip(items[start : start + batch_size], bgr, strict=True)):
                name = str(image) if isinstance(image, str | Path) else f"image {start + number}"
                check_result_shape(array.shape[:2], name)
            maps, probabilities = self.forward(torch.stack([self.preprocess(b) for b in bgr]))
            results += self.postprocess(maps, probabilities, [b.shape[:2] for b in bgr], blur_sigma, calibration)
        return results[0] if single else results

    def calibration_for(self, calibration: str, label: str | None) -> Calibration | None:
        """The calibration ``calibration`` (none | auto | a domain) means for an image of predicted class ``label``
        (None: only check the choice; :func:`umsi.calibration.choose_calibration`). Raises ``ValueError`` for a
        domain without a calibration, or ``auto`` on a model without any."""
        return choose_calibration(self.calibrations, calibration, label)

    def __repr__(self) -> str:
        return f"Predictor({self.name!r}, input {self.input_size}, classes {self.class_names}, {self.device})"


def store_autocast_weights(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast, in place and once, the weights that CPU autocast to ``dtype`` would cast on every call: those of the
    convolutions and linear layers (the ops autocast runs in ``dtype``), so their outputs under autocast are the
    same bits; the casts cost 2–3 % of a bf16 forward pass at 240×320 (docs/performance.md). The model then runs
    under autocast only."""
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            module.to(dtype)


def load(path: str | Path, device: str = "cpu", precision: str = "32") -> Predictor:
    """A ready ``Predictor`` from a training checkpoint, converted official weights (``.ckpt`` or the ``.h5``)
    or an exported model (``.onnx`` through onnxruntime, ``.ts`` TorchScript), or a ``umsi-train`` run or stage
    folder (its best checkpoint, :func:`umsi.checkpoints.loading.model_file`). A PyTorch network is loaded in
    eval mode with its BatchNorms folded into the convolutions (``umsi.inference.fold``): the same maps to float
    rounding, one pass less per layer; it is for inference, not for training. On the CPU, with ``precision`` bf16
    or 16 its convolution and linear weights are stored in that dtype (:func:`store_autocast_weights`), and its
    plain convolutions keep their weights in oneDNN's layout (``umsi.inference.packed``): faster, the same maps to
    float rounding."""
    path = Path(path)
    if path.is_dir():
        from umsi.checkpoints.loading import model_file

        path = model_file(path, "path")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if path.suffix.lower() in EXPORTED_SUFFIXES:
        from umsi.checkpoints.exported import load_exported

        exported = load_exported(path, device=device)
        exported_device = "cpu" if path.suffix.lower() == ".onnx" else device
        return Predictor.from_card(exported, exported.card, exported_device, precision)
    from umsi.checkpoints.loading import load_model

    loaded = load_model(path, device=device)
    fold_batchnorm(loaded.model)  # the predictor's own copy, for inference only
    dtype = PRECISIONS.get(str(precision))
    if torch.device(device).type == "cpu":
        if dtype is not None:
            store_autocast_weights(loaded.model, dtype)
        pack_convolutions(loaded.model)
    return Predictor.from_card(loaded.model, loaded.card, device, precision, name=loaded.name)
