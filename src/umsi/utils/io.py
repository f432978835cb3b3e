"""Crash-safe file writing: write to a temporary file in the same folder, then rename over the target."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

PARTIAL_MARK = ".partial-"  # in the names of temporary files: .<stem>.partial-<random><suffix>


def atomic_write(path: str | Path, write: Callable[[Path], None], durable: bool = False) -> Path:
    """Call ``write(tmp_path)`` and rename the result to ``path``; on any error the target is untouched.

    The temporary file is ``.<stem>.partial-<random><suffix>`` in the same folder (the suffix is kept for
    writers that choose the format by it). A rename within one file system is atomic: a reader, or a process
    killed at any moment, sees the old file or the new one, never a mix.
    ``durable``: flush the file and the folder entry to disk before returning (checkpoints: survives power loss).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}{PARTIAL_MARK}", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the permissions open() would
        if durable:
            _fsync(Path(tmp))
        os.replace(tmp, path)
        if durable:
            _fsync(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a folder
        pass
    finally:
        os.close(fd)


def remove_partial_files(folder: str | Path) -> list[Path]:
    """Delete the temporary files :func:`atomic_write` leaves behind when its process is killed mid-write."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = sorted(p for p in folder.glob(f".*{PARTIAL_MARK}*") if p.is_file())
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, data: Any) -> Path:
    """Atomically write ``data`` as indented JSON."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str) + "\n"))


def write_image(path: str | Path, image_rgb: np.ndarray) -> Path:
    """Atomically write an (H, W, 3) uint8 RGB image (format from the suffix)."""

    def _write(tmp: Path) -> None:
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(image_rgb[..., ::-1])):
            raise OSError(f"could not encode image {path}")

    return atomic_write(path, _write)
