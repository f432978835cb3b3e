"""Exported model files: write (:func:`export_model`), open (:func:`load_exported`) and compare with PyTorch
(:func:`parity_check`) ONNX and TorchScript files.

The exported network takes ``image`` (B, 3, H, W) float32, preprocessed like the training data, at the fixed
``input_size`` (H, W) and any batch size B, and returns ``saliency`` (B, 1, sH, sW) and ``logits`` (B, K).
What is needed to feed it and name its outputs, its model card (:mod:`umsi.models.card`: class names, input size,
preprocessing, output scale, source = exported from …), travels inside the file as JSON: ONNX
``metadata_props["umsi"]``, TorchScript extra file ``umsi.json``.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import io
import json
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from umsi.errors import CheckpointError, ConfigError
from umsi.models.card import DEFAULT_OUTPUT_SCALE, ModelCard
from umsi.models.umsi import UMSIOutput
from umsi.utils.io import atomic_write

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
SUFFIXES = {".onnx": "onnx", ".ts": "torchscript", ".torchscript": "torchscript"}
DEFAULT_SUFFIX = {"onnx": ".onnx", "torchscript": ".ts"}
METADATA_KEY = "umsi"  # ONNX metadata_props key; the TorchScript extra file is f"{METADATA_KEY}.json"
TORCHSCRIPT_METADATA_FILE = f"{METADATA_KEY}.json"
INPUT_NAME = "image"
OUTPUT_NAMES = ("saliency", "logits")
EXAMPLE_BATCH = 2  # traced at batch 2 so that nothing batch-1 specific is baked in
PARITY_STD = 50.0  # random inputs look like Caffe-mean-subtracted images (values of tens)


class _TupleOutput(nn.Module):
    """The model with a plain ``(saliency, logits)`` tuple output, as exporters want."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        saliency, logits = self.model(image)
        return saliency, logits


@contextlib.contextmanager
def _export_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode while tracing (restored afterwards), with the tracer's expected warnings silenced."""
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            # Spatial sizes are constants of the export by design (only the batch is dynamic), so the tracer's
            # "treated as a constant" warnings (tf_ops size checks) are expected; the deprecation notices of
            # torch.jit.trace and the TorchScript-based ONNX exporter are known and not actionable here.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
            warnings.filterwarnings("ignore", message=r"You are using the legacy TorchScript-based ONNX export")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            yield
    finally:
        model.train(was_training)


def _device_of(model: nn.Module) -> torch.device:
    return next(iter(model.parameters()), torch.empty(0)).device


def _format_for(path: Path) -> str:
    """``onnx`` | ``torchscript`` from the suffix; ValueError naming the file and the accepted suffixes."""
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown exported-model suffix {path.suffix!r}; use one of {sorted(SUFFIXES)}")
    return fmt


def check_size(input_size: Sequence[int]) -> tuple[int, int]:
    size = tuple(int(v) for v in input_size)
    if len(size) != 2 or min(size, default=0) < 1:
        raise ValueError(f"input_size must be (rows, cols) of positive integers, got {list(input_size)}")
    return size  # type: ignore[return-value]


def export_model(
    model: nn.Module,
    path: str | Path,
    fmt: str,
    input_size: tuple[int, int],
    metadata: dict[str, Any],
    opset: int = 17,
) -> Path:
    """Export ``model`` (image (B, 3, H, W) → (saliency, logits)) for input (H, W) = ``input_size``, any batch.

    ``fmt``: ``onnx`` (TorchScript-based ``torch.onnx.export``, input "image", outputs "saliency", "logits",
    dynamic axis 0, ``metadata`` as JSON in ``metadata_props["umsi"]``) or ``torchscript`` (``torch.jit.trace``,
    ``metadata`` in the extra file ``umsi.json``). The stored metadata gets ``input_size`` = the export's.
    ONNX is traced on a CPU copy, TorchScript on the model's device. Written atomically (nothing is left when
    the export fails).
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {FORMATS}")
    if _format_for(path) != fmt:
        raise ValueError(f"{path}: the suffix does not match format {fmt!r} (use {DEFAULT_SUFFIX[fmt]})")
    size = check_size(input_size)
    meta_json = json.dumps({**metadata, "input_size": list(size)})
    device = _device_of(model)

    def write_onnx(tmp: Path) -> None:
        import onnx

        # ONNX files are device-independent: trace a CPU copy (the TF1 resize's index tensors are traced as
        # constants on the tracing device)
        source = model if device.type == "cpu" else copy.deepcopy(model).cpu()
        buffer = io.BytesIO()
        batch = {0: "batch"}
        with _export_mode(source):
            torch.onnx.export(
                _TupleOutput(source),
                (torch.zeros(EXAMPLE_BATCH, 3, *size),),
                buffer,
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={name: batch for name in (INPUT_NAME, *OUTPUT_NAMES)},
                opset_version=opset,
            )
        proto = onnx.load_from_string(buffer.getvalue())
        _set_onnx_metadata(proto, meta_json)
        onnx.save(proto, str(tmp))

    def write_torchscript(tmp: Path) -> None:
        example = torch.zeros(EXAMPLE_BATCH, 3, *size, device=device)
        with _export_mode(model), torch.no_grad():
            traced = torch.jit.trace(_TupleOutput(model), (example,), check_trace=False)
            torch.jit.save(traced, str(tmp), _extra_files={TORCHSCRIPT_METADATA_FILE: meta_json})

    return atomic_write(path, write_onnx if fmt == "onnx" else write_torchscript)


def _set_onnx_metadata(proto: Any, meta_json: str) -> None:
    """Replace the ``metadata_props["umsi"]`` entry of an ONNX ModelProto (other entries are kept)."""
    props = [p for p in proto.metadata_props if p.key != METADATA_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(props)
    proto.metadata_props.add(key=METADATA_KEY, value=meta_json)


def write_onnx_metadata(path: str | Path, metadata: dict[str, Any]) -> None:
    """Set the umsi metadata (JSON in ``metadata_props["umsi"]``) of the ONNX file ``path`` in place — for files
    another tool wrote from an ``umsi-export`` file (the int8 quantizer). The caller owns ``path`` (a temporary
    file it renames when complete)."""
    import onnx

    proto = onnx.load(str(path))
    _set_onnx_metadata(proto, json.dumps(metadata))
    onnx.save(proto, str(path))


class ExportedNetwork(abc.ABC):
    """An exported UMSI: ``net(image (B, 3, H, W) float32) → UMSIOutput`` (CPU tensors), ``net.metadata``."""

    format: str

    def __init__(self, path: Path, metadata: dict[str, Any], device: str) -> None:
        self.path = path
        self.device = device
        if "input_size" in metadata:
            metadata["input_size"] = tuple(int(v) for v in metadata["input_size"])
        self.metadata = metadata

    @property
    def card(self) -> ModelCard:
        """The file's model card. A file exported before the card existed (flat ``name``, ``class_names``,
        ``input_size``, ``preprocessing``, ``output_scale``, ``source``) gets one from those keys, with one
        warning; ``CheckpointError`` naming the file when it carries neither."""
        meta = self.metadata
        try:
            if "architecture" in meta:
                return ModelCard.from_dict(meta)
            if "class_names" in meta and "input_size" in meta:
                log.warning("%s has no model card (exported before umsi stored one): read from its metadata", self.path)
                return ModelCard(
                    architecture="umsi",
                    class_names=tuple(meta["class_names"]),
                    input_size=tuple(meta["input_size"]),
                    preprocessing=meta.get("preprocessing", "official"),
                    output_scale=float(meta.get("output_scale", DEFAULT_OUTPUT_SCALE)),
                    name=str(meta.get("name") or self.path.stem),
                    source={"kind": "exported", "file": str(meta.get("source", "")), "from": None},
                )
        except ConfigError as err:
            raise CheckpointError(f"{self.path}: its model card does not read ({err}); export it again") from None
        raise CheckpointError(f"{self.path} carries no umsi metadata: export it with umsi-export")

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(rows, cols) the network was exported for (None when the file carries no metadata)."""
        return self.metadata.get("input_size")

    def __call__(self, image: torch.Tensor) -> UMSIOutput:
        """image (B, 3, H, W) float32 at ``input_size`` → UMSIOutput(saliency (B, 1, sH, sW), logits (B, K))."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"{self.path.name}: expected an image batch (B, 3, H, W), got {tuple(image.shape)}")
        if self.input_size is not None and tuple(image.shape[-2:]) != self.input_size:
            raise ValueError(
                f"{self.path.name} was exported for {self.input_size[0]}×{self.input_size[1]} inputs, "
                f"got {image.shape[-2]}×{image.shape[-1]} (resize or letterbox first)"
            )
        saliency, logits = self._run(image.detach().float())
        return UMSIOutput(saliency, logits)

    @abc.abstractmethod
    def _run(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) float32 → (saliency, logits) CPU tensors, by the backend."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, device={self.device!r})"


class OnnxNetwork(ExportedNetwork):
    """ONNX file run by onnxruntime (CUDA execution provider for ``device="cuda[:N]"`` when available)."""

    format = "onnx"

    def __init__(self, path: Path, device: str = "cpu") -> None:
        import onnxruntime as ort

        providers: list[Any] = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" in ort.get_available_providers():
                index = int(device.partition(":")[2] or 0)
                providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
            else:
                log.warning("%s: onnxruntime has no CUDAExecutionProvider here; running on the CPU", path)
                device = "cpu"
        self.session = ort.InferenceSession(str(path), providers=providers)
        meta = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        super().__init__(path, json.loads(meta) if meta else {}, device)

    def _run(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        array = image.cpu().contiguous().numpy()
        saliency, logits = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: array})
        return torch.from_numpy(saliency), torch.from_numpy(logits)


class TorchScriptNetwork(ExportedNetwork):
    """TorchScript file (``torch.jit.load``) on ``device``. A traced ``UMSI.official()`` keeps the device it was
    traced on for the index tensors of its TF1 resize, so run it on the device it was exported on (the CLI's
    ``device``); the default network runs anywhere."""

    format = "torchscript"

    def __init__(self, path: Path, device: str = "cpu") -> None:
        extra = {TORCHSCRIPT_METADATA_FILE: ""}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")  # "deprecated"
            self.module = torch.jit.load(str(path), map_location=device, _extra_files=extra).eval()
        meta = extra[TORCHSCRIPT_METADATA_FILE]
        super().__init__(path, json.loads(meta) if meta else {}, device)

    def _run(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            with torch.inference_mode():
                saliency, logits = self.module(image.to(self.device))
        except RuntimeError as err:
            if "same device" not in str(err):
                raise
            raise RuntimeError(
                f"{self.path.name} cannot run on device={self.device}: a traced network keeps the device it was "
                "exported on for the tensors it creates; load it on that device (or use the ONNX export)"
            ) from err
        return saliency.cpu(), logits.cpu()


def load_exported(path: str | Path, device: str = "cpu") -> ExportedNetwork:
    """Open an ``umsi-export`` file: ``.onnx`` → :class:`OnnxNetwork`, ``.ts`` / ``.torchscript`` →
    :class:`TorchScriptNetwork`. ValueError for another suffix, FileNotFoundError for a missing file."""
    path = Path(path)
    fmt = _format_for(path)
    if not path.is_file():
        raise FileNotFoundError(f"exported model {path} does not exist")
    return OnnxNetwork(path, device) if fmt == "onnx" else TorchScriptNetwork(path, device)


def parity_check(
    model: nn.Module,
    exported: ExportedNetwork,
    input_size: tuple[int, int],
    batch_sizes: Sequence[int] = (2, 3),
    seed: int = 0,
) -> dict[str, float]:
    """Max |PyTorch − export| over seeded random inputs (B, 3, *input_size), normal with std 50, for each
    batch size B (several sizes exercise the dynamic batch) → {"saliency": max, "logits": max}."""
    generator = torch.Generator().manual_seed(seed)
    device = _device_of(model)
    worst = {"saliency": 0.0, "logits": 0.0}
    was_training = model.training
    model.eval()
    try:
        for batch in batch_sizes:
            image = torch.randn(batch, 3, *input_size, generator=generator) * PARITY_STD
            with torch.no_grad():
                expected = model(image.to(device))
            got = exported(image)
            for key, ref, out in zip(OUTPUT_NAMES, expected, got, strict=True):
                if ref.shape != out.shape:
                    raise RuntimeError(f"{key}: the export gives {tuple(out.shape)}, PyTorch {tuple(ref.shape)}")
                diff = (ref.float().cpu() - out.float()).abs().max().item()
                if not math.isnan(worst[key]) and (math.isnan(diff) or diff > worst[key]):  # a NaN sticks
                    worst[key] = diff
    finally:
        model.train(was_training)
    return worst


def export_metadata(card: ModelCard, source_file: str | Path, input_size: tuple[int, int]) -> dict[str, Any]:
    """The card stored in an export of ``source_file`` (whose card is ``card``) at ``input_size``: the same
    card with that input size and source ``{"kind": "exported", "file": <source file's name>, "from": <its
    source>}`` (the name only, so a copied checkpoint exports the same metadata)."""
    exported_from = {"kind": "exported", "file": Path(source_file).name, "from": card.source}
    return card.replace(input_size=tuple(input_size), source=exported_from).to_dict()
