"""Submission files for the MIT/Tübingen saliency benchmark and the SALICON challenge (``umsi-export
format=benchmark|salicon``).

- **benchmark** (matthias-k/saliency-benchmarking; `../shared/docs/beyond-the-paper.md` §4): a folder with
  ``config.yaml`` (``model.name``, ``model.filename``, ``model.probabilistic``, ``dataset``) and one HDF5 file with a
  dataset per stimulus, keyed by its minimal unique file name: log-densities of exactly the stimulus size with
  logsumexp 0 (``probabilistic=true``), or saliency maps. Written with ``pysaliency.export_model_to_hdf5`` and read
  back through ``pysaliency.HDF5Model`` / ``HDF5SaliencyMapModel`` before it counts as written.
- **salicon**: the challenge's results JSON, a list of ``{"image_id": int, "saliency_map": base64 PNG}`` (8-bit
  grayscale at the image's size; the id is the number at the end of the COCO file name).

Both are written into a temporary folder next to the destination and renamed into place, so a stimulus that
fails leaves nothing behind.
"""

from __future__ import annotations

import base64
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.special import logsumexp
from tqdm import tqdm

from umsi.errors import ConfigError, UserError
from umsi.inference.predictor import Predictor
from umsi.integrations.pysaliency import UMSIModel, UMSISaliencyMapModel, file_stimuli, pysaliency
from umsi.utils.io import write_json
from umsi.visualize import heatmap_png

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
LOGSUMEXP_TOLERANCE = 1e-3  # the benchmark rejects log-densities whose logsumexp is further from 0


def stimulus_files(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder``, sorted. Raises ``UserError`` when there is none."""
    folder = Path(folder)
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not files:
        raise UserError(f"stimuli={folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) in that folder")
    return files


class _Named:
    """Runs one stimulus's prediction and names the file when it fails."""

    def __init__(self, files: Sequence[Path]) -> None:
        self.files = list(files)

    def fail(self, index: int, error: Exception) -> UserError:
        return UserError(f"{self.files[index]}: {type(error).__name__}: {error}; nothing was written")


def write_benchmark_bundle(
    predictor: Predictor,
    stimuli_folder: str | Path,
    output: str | Path,
    *,
    probabilistic: bool = True,
    dataset: str = "MIT300",
    calibration: str = "none",
    overwrite: bool = False,
) -> Path:
    """Predict every image of ``stimuli_folder`` and write the bundle folder ``output`` (``config.yaml`` +
    ``predictions.hdf5``); returns ``output``. Raises ``UserError`` naming a stimulus that fails or a bundle that
    does not read back (shape or logsumexp), leaving nothing at ``output``."""
    output = Path(output)
    if output.exists() and not overwrite:
        raise UserError(f"{output} already exists; pass overwrite=true to replace it (or output=...)")
    files = stimulus_files(stimuli_folder)
    stimuli = file_stimuli(files)
    # caching: the exporter below gets the maps predicted (and checked) in the loop
    model = (UMSIModel if probabilistic else UMSISaliencyMapModel)(predictor, calibration=calibration, caching=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        hdf5 = staging / "predictions.hdf5"
        named = _Named(files)
        for index in range(len(files)):  # predict each first, so a failing stimulus is named before any file
            try:
                model.log_density(stimuli[index]) if probabilistic else model.saliency_map(stimuli[index])
            except Exception as error:
                raise named.fail(index, error) from error
        pysaliency.export_model_to_hdf5(model, stimuli, str(hdf5))
        _verify(stimuli, files, hdf5, probabilistic)
        config = {
            "model": {"name": predictor.name, "filename": hdf5.name, "probabilistic": probabilistic},
            "dataset": dataset,
        }
        (staging / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output


def _verify(stimuli: object, files: Sequence[Path], hdf5: Path, probabilistic: bool) -> None:
    """Read the file back through pysaliency's own HDF5 model: every stimulus present, of its exact size, and
    (probabilistic) logsumexp within ±LOGSUMEXP_TOLERANCE."""
    reader = (pysaliency.HDF5Model if probabilistic else pysaliency.HDF5SaliencyMapModel)(stimuli, str(hdf5))
    for index, path in enumerate(files):
        values = reader.log_density(stimuli[index]) if probabilistic else reader.saliency_map(stimuli[index])
        expected = stimuli.sizes[index]
        if tuple(values.shape[:2]) != tuple(expected[:2]):
            raise UserError(f"{path}: the bundle holds a {values.shape} map for a {expected} stimulus")
        if probabilistic and abs(float(logsumexp(values))) > LOGSUMEXP_TOLERANCE:
            raise UserError(f"{path}: logsumexp of the log-density is {logsumexp(values):.4g}, not 0 ± 0.001")


def salicon_image_id(path: Path) -> int:
    """COCO_val2014_000000000192.jpg → 192. Raises ``UserError`` for a name without a trailing number."""
    match = re.search(r"(\d+)$", path.stem)
    if match is None:
        raise UserError(f"{path}: a SALICON image name ends in its COCO id (COCO_val2014_000000000192.jpg)")
    return int(match.group(1))


def encode_png(heatmap: np.ndarray) -> str:
    """(H, W) float map in [0, 1] → base64 of the 8-bit grayscale PNG ``umsi-predict`` writes
    (:func:`umsi.visualize.heatmap_png`)."""
    return base64.b64encode(heatmap_png(heatmap)).decode("ascii")


def write_salicon_json(
    predictor: Predictor,
    stimuli_folder: str | Path,
    output: str | Path,
    *,
    calibration: str = "none",
    overwrite: bool = False,
) -> Path:
    """Predict every image of ``stimuli_folder`` and write the SALICON results JSON ``output``; returns it.
    Raises ``UserError`` naming a stimulus that fails (nothing written)."""
    output = Path(output)
    if output.exists() and not overwrite:
        raise UserError(f"{output} already exists; pass overwrite=true to replace it (or output=...)")
    files = stimulus_files(stimuli_folder)
    ids = [salicon_image_id(p) for p in files]
    results, named = [], _Named(files)
    for index, path in enumerate(tqdm(files, desc="salicon", unit="image")):
        try:
            heatmap = predictor.predict(path, calibration=calibration).heatmap
        except Exception as error:
            raise named.fail(index, error) from error
        results.append({"image_id": ids[index], "saliency_map": encode_png(heatmap)})
    output.parent.mkdir(parents=True, exist_ok=True)
    return write_json(output, results)


BUNDLE_FORMATS = ("benchmark", "salicon")


def export_bundle_from_config(cfg: Any) -> Path:
    """What ``umsi-export format=benchmark|salicon`` does with its config (conf/export.yaml): load ``ckpt`` (a
    file, run folder or ``latest``), predict every image of ``stimuli`` and write the bundle (``output``, default
    next to the checkpoint). Raises the project's user errors naming the key."""
    from umsi.checkpoints.loading import resolve_checkpoint
    from umsi.inference.predictor import load

    fmt = str(cfg.format)
    if fmt not in BUNDLE_FORMATS:
        raise ConfigError(f"format={fmt}: a submission bundle is one of {BUNDLE_FORMATS}")
    if cfg.stimuli is None:
        raise ConfigError(f"format={fmt} needs stimuli=<folder of stimulus images>")
    checkpoint = resolve_checkpoint(cfg)
    suffix = "_benchmark" if fmt == "benchmark" else "_salicon.json"
    output = Path(str(cfg.output)) if cfg.output is not None else checkpoint.with_name(checkpoint.stem + suffix)
    predictor = load(checkpoint, device=str(cfg.device))
    try:
        predictor.calibration_for(str(cfg.calibration), None)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    options = {"calibration": str(cfg.calibration), "overwrite": bool(cfg.overwrite)}
    if fmt == "benchmark":
        written = write_benchmark_bundle(
            predictor, cfg.stimuli, output, probabilistic=bool(cfg.probabilistic), dataset=str(cfg.dataset), **options
        )
    else:
        written = write_salicon_json(predictor, cfg.stimuli, output, **options)
    print(f"wrote {written} ({fmt}, {len(stimulus_files(cfg.stimuli))} stimuli, model {predictor.name})")
    return written
