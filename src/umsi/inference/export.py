"""What ``umsi-export`` does: a checkpoint → ONNX or TorchScript file next to it, parity-checked against PyTorch
before it is written (the file formats themselves: :mod:`umsi.checkpoints.exported`); with ``quantize=int8`` an
int8 ONNX file, written only when it passes the accuracy check against fp32 (:mod:`umsi.inference.quantize`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from umsi.checkpoints.exported import (
    DEFAULT_SUFFIX,
    FORMATS,
    SUFFIXES,
    check_size,
    export_metadata,
    export_model,
    load_exported,
    parity_check,
    write_onnx_metadata,
)
from umsi.checkpoints.loading import LoadedModel, load_model, resolve_checkpoint
from umsi.errors import CheckpointError, ConfigError, ExportError, UserError
from umsi.inference.quantize import (
    QUANTIZATION_METHOD,
    AccuracyCheckError,
    AccuracyThresholds,
    accuracy_report,
    describe_report,
    load_images,
    quantize_int8,
    run_network,
    split_images,
)

QUANTIZE = (None, "int8")


def _human_size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MiB" if n_bytes >= 2**20 else f"{n_bytes / 2**10:.1f} KiB"


def _output_path(cfg: DictConfig, fmt: str, ckpt: Path) -> Path:
    if cfg.output is None:
        quantized = f"_{cfg.quantize}" if cfg.get("quantize") else ""
        return ckpt.with_name(ckpt.stem + quantized + DEFAULT_SUFFIX[fmt])
    path = Path(str(cfg.output))
    if SUFFIXES.get(path.suffix.lower()) != fmt:
        accepted = [s for s, f in SUFFIXES.items() if f == fmt]
        raise ConfigError(f"output={path}: a {fmt} file must end with {' or '.join(accepted)}")
    return path


def export_from_config(cfg: DictConfig) -> Path:
    """What ``umsi-export`` does with its config (conf/export.yaml). The export's metadata is the checkpoint's
    model card at the export's input size (:func:`~umsi.checkpoints.exported.export_metadata`). Raises the
    project's user errors (one line naming the key): :class:`ConfigError` (format, output, input_size, an
    existing output, quantize options), :class:`MissingPathError` (ckpt), :class:`CheckpointError` (a file that
    does not load), :class:`ExportError` (parity check failed) and, for ``quantize=int8``,
    :class:`~umsi.inference.quantize.AccuracyCheckError` (the int8 model is too far from fp32); nothing is written
    after an error."""
    fmt = str(cfg.format)
    if fmt not in FORMATS:
        # benchmark | salicon (submission files for a folder of stimuli) are written by umsi.integrations.benchmark
        raise ConfigError(
            f"format={fmt} is not supported; choose one of {', '.join((*FORMATS, 'benchmark', 'salicon'))}"
        )
    quantize = cfg.get("quantize")
    if quantize not in QUANTIZE:
        raise ConfigError(f"quantize={quantize} is not supported; use quantize=int8 (or null for fp32)")
    if quantize and fmt != "onnx":
        raise ConfigError(f"quantize={quantize} needs format=onnx (ONNX Runtime runs the int8 model)")
    if quantize and cfg.get("calibration_images") is None:
        raise ConfigError(
            f"quantize={quantize} needs calibration_images=<folder> (images like the ones the model will see)"
        )
    ckpt = resolve_checkpoint(cfg)  # MissingPathError: one line, exit code 2 (hydra_cli)
    output = _output_path(cfg, fmt, ckpt)
    if output.exists() and not cfg.overwrite:
        raise ConfigError(f"{output} already exists; pass overwrite=true to replace it (or output=...)")
    requested = None
    if cfg.input_size is not None:
        try:
            requested = check_size(cfg.input_size)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"input_size={list(cfg.input_size)}: {err}") from None
    try:
        loaded = load_model(ckpt, device=str(cfg.device))
    except UserError as err:
        raise CheckpointError(f"ckpt={ckpt}: cannot load it ({err})") from None
    size = requested or loaded.input_size
    print(f"exporting {loaded.name} ({ckpt}) to {fmt} at {size[0]}×{size[1]}, dynamic batch")

    output.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{output.stem}.export.", suffix=output.suffix, dir=output.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        metadata = export_metadata(loaded.card, ckpt, size)
        export_model(loaded.model, tmp, fmt, size, metadata, opset=int(cfg.opset))
        exported = load_exported(tmp, device=str(cfg.device))
        diffs = parity_check(loaded.model, exported, size, batch_sizes=(2, 3))
        del exported  # release the file before it is renamed
        tolerance = float(cfg.tolerance)
        print(
            f"parity (random input, batch 2 and 3): max |Δ| saliency {diffs['saliency']:.1e}, "
            f"logits {diffs['logits']:.1e} (tolerance {tolerance:.0e})"
        )
        if not all(diff < tolerance for diff in diffs.values()):  # NaN fails too
            raise ExportError(f"parity check failed (tolerance={tolerance:g}): {output} was not written")
        if quantize:
            _quantize_checked(cfg, loaded, tmp, size, metadata)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {output} ({_human_size(output.stat().st_size)})")
    return output


def _quantize_checked(
    cfg: DictConfig, loaded: LoadedModel, path: Path, size: tuple[int, int], metadata: dict[str, Any]
) -> None:
    """Replace the fp32 ONNX file ``path`` with its int8 version when it passes the accuracy check against fp32
    on held-out images (:class:`AccuracyCheckError` with the numbers otherwise; ``path`` is the caller's
    temporary file). ``metadata``: the fp32 export's card, stored with ``quantization`` (the calibration set and
    the accuracy report) added."""
    folder = Path(str(cfg.calibration_images))
    calibration, check = split_images(
        folder, int(cfg.n), cfg.get("check_images"), int(cfg.get("n_check", 50)), int(cfg.get("seed", 0))
    )
    thresholds = AccuracyThresholds(float(cfg.min_cc), float(cfg.max_kl), float(cfg.min_class_agreement))
    print(f"quantizing to int8 with {len(calibration)} calibration images from {folder}")
    preprocessing = loaded.preprocessing
    check_images = load_images(check, size, preprocessing)
    reference = run_network(load_exported(path), check_images)
    quantized = path.with_name(path.stem + ".int8" + path.suffix)
    try:
        quantize_int8(path, quantized, load_images(calibration, size, preprocessing))
        names = [_name(f, folder) for f in check]
        report = accuracy_report(reference, run_network(load_exported(quantized), check_images), names, thresholds)
        print(f"accuracy check, int8 against fp32: {describe_report(report)}")
        if not report["passed"]:
            raise AccuracyCheckError(f"int8 against fp32 on {describe_report(report)}: nothing was written")
        calibration_set = {
            "folder": str(folder),
            "n": len(calibration),
            "files": [_name(f, folder) for f in calibration],
        }
        quantization = {
            "precision": "int8",
            "method": QUANTIZATION_METHOD,
            "calibration": calibration_set,
            "accuracy_check": report,
        }
        write_onnx_metadata(quantized, {**metadata, "quantization": quantization})
        os.replace(quantized, path)
    finally:
        quantized.unlink(missing_ok=True)


def _name(file: Path, folder: Path) -> str:
    """The file's path below ``folder`` (its full path when it is elsewhere: a check_images folder)."""
    return str(file.relative_to(folder)) if file.is_relative_to(folder) else str(file)
