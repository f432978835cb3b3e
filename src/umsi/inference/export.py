"""What ``umsi-export`` does: a checkpoint → ONNX or TorchScript file next to it, parity-checked against PyTorch
before it is written (the file formats themselves: :mod:`umsi.checkpoints.exported`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
)
from umsi.checkpoints.loading import load_model, resolve_checkpoint
from umsi.errors import CheckpointError, ConfigError, ExportError, MissingPathError, UserError


def _human_size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MiB" if n_bytes >= 2**20 else f"{n_bytes / 2**10:.1f} KiB"


def _resolve_checkpoint(cfg: DictConfig) -> Path:
    try:
        return resolve_checkpoint(cfg)
    except FileNotFoundError as err:
        raise MissingPathError(str(err)) from None


def _output_path(cfg: DictConfig, fmt: str, ckpt: Path) -> Path:
    if cfg.output is None:
        return ckpt.with_suffix(DEFAULT_SUFFIX[fmt])
    path = Path(str(cfg.output))
    if SUFFIXES.get(path.suffix.lower()) != fmt:
        accepted = [s for s, f in SUFFIXES.items() if f == fmt]
        raise ConfigError(f"output={path}: a {fmt} file must end with {' or '.join(accepted)}")
    return path


def export_from_config(cfg: DictConfig) -> Path:
    """What ``umsi-export`` does with its config (conf/export.yaml). The export's metadata is the checkpoint's
    model card at the export's input size (:func:`~umsi.checkpoints.exported.export_metadata`). Raises the
    project's user errors (one line naming the key): :class:`ConfigError` (format, output, input_size, an
    existing output), :class:`MissingPathError` (ckpt), :class:`CheckpointError` (a file that does not load)
    and :class:`ExportError` (parity check failed; nothing is written)."""
    fmt = str(cfg.format)
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt} is not supported; choose one of {', '.join(FORMATS)}")
    ckpt = _resolve_checkpoint(cfg)
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
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {output} ({_human_size(output.stat().st_size)})")
    return output
