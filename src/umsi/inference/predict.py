"""What ``umsi-predict ckpt=… input=<file|folder|glob|[list of them]> output=<folder>`` does: heatmap PNG, overlay
JPEG and class probabilities for every image, at each image's own size.

Per image ``<name>_heatmap.png`` (8-bit, min–max scaled) and ``<name>_overlay.jpg``, ``<name>`` being the input's
path below the common folder of all inputs (so two ``poster.png`` in different folders get two results); for the run
``predictions.csv`` and ``predictions.json``. Every file is written under a temporary name and renamed when
complete; existing results are only replaced with ``overwrite=true``. Unreadable inputs are reported with their
path and skipped; the exit code is 1 when any input failed, 2 when nothing could run.
"""

from __future__ import annotations

import csv
import glob
import io
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from umsi.checkpoints.loading import resolve_checkpoint
from umsi.data.layouts import IMAGE_SUFFIXES
from umsi.data.readers import read_image_bgr
from umsi.data.transforms import check_result_shape, letterbox, normalize_image
from umsi.errors import ConfigError
from umsi.inference.predictor import Prediction, Predictor, load
from umsi.models.card import Preprocessing
from umsi.utils.io import atomic_write, write_json
from umsi.visualize import colormap_code, heatmap_png, overlay_jpeg

log = logging.getLogger(__name__)
GLOB_CHARS = "*?["


class PredictError(ConfigError):
    """A configuration problem found before any prediction; the message names the key."""


@dataclass
class Job:
    """One input image and where its results go."""

    source: Path
    heatmap: Path
    overlay: Path


@dataclass
class RunRecord:
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    model_seconds: float = 0.0


def real_path(path: str | Path) -> Path:
    """``path`` absolute, its folders real (every ``..``, ``.`` and symbolic link resolved), its own name kept."""
    path = Path(path)
    return Path(os.path.realpath(path.parent)) / path.name


def _expand(spec: str) -> tuple[list[Path], Path]:
    """One ``input=`` entry: a file, a folder (recursive, image suffixes only) or a glob → (sorted files, the
    folder their output names are relative to: the folder itself, a file's folder, a glob's common folder), all
    real paths (:func:`real_path`), so ``../campaign/`` names the folder it is, never a ``..`` in an output name."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [real_path(path)], real_path(path).parent
    if path.is_dir():
        root = Path(os.path.realpath(path))
        files = sorted(real_path(p) for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise PredictError(f"input={spec}: the folder has no image files ({', '.join(IMAGE_SUFFIXES)})")
        return files, root
    if any(c in spec for c in GLOB_CHARS):
        files = sorted(real_path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not files:
            raise PredictError(f"input={spec}: the pattern matches no file")
        return files, Path(os.path.commonpath([f.parent for f in files]))
    raise PredictError(f"input={spec}: no such file or folder (a glob needs * ? or [ ])")


def find_inputs(spec: str | Sequence[str]) -> tuple[list[Path], Path]:
    """``input=``: a file, a folder, a glob, or a list of any of them → (files, common root).

    Every file appears once (in the order given); the root is the deepest folder that holds every entry's
    folder, so output names keep the structure below it (``in/*/poster.png`` → ``shop_a/poster``,
    ``shop_b/poster``)."""
    specs = [spec] if isinstance(spec, str | os.PathLike) else [str(s) for s in spec]
    if not specs:
        raise PredictError("input=[]: give at least one image file, folder or glob")
    files: dict[Path, None] = {}
    roots = []
    for entry in specs:
        found, root = _expand(str(entry))
        roots.append(root)
        files |= dict.fromkeys(found)
    return list(files), Path(os.path.commonpath(roots))


def _output_base(relative: Path, keep_suffix: bool) -> Path:
    """``a/b.png`` → ``a/b`` (``a/b_png`` when another input has the same stem in the same folder)."""
    return relative.parent / (relative.name.replace(".", "_") if keep_suffix else relative.stem)


def plan_jobs(files: list[Path], root: Path, output: Path) -> list[Job]:
    """Output names keep the folder structure below ``root``; inputs that share a stem keep their suffix.

    Raises :class:`PredictError` naming both inputs when two of them would still be written to one file
    (e.g. ``a.png`` and ``a_png.jpg`` next to ``a.jpg``), and naming the input when its result would lie outside
    ``output`` (a file reached through a symbolic link that leaves its folder), before anything is written."""
    relative = []
    for file in files:
        rel = Path(os.path.relpath(real_path(file), root))
        if rel.parts[:1] == ("..",) or rel.is_absolute():
            raise PredictError(
                f"input: {file} lies outside {root}, the folder the output names are relative to (a symbolic "
                "link?); give the file itself or its real folder"
            )
        relative.append(rel)
    stems = Counter(r.parent / r.stem for r in relative)
    jobs = []
    writer: dict[Path, Path] = {}
    for file, rel in zip(files, relative, strict=True):
        base = output / _output_base(rel, keep_suffix=stems[rel.parent / rel.stem] > 1)
        job = Job(file, base.with_name(base.name + "_heatmap.png"), base.with_name(base.name + "_overlay.jpg"))
        if job.heatmap in writer:
            raise PredictError(
                f"input: {writer[job.heatmap]} and {file} would both be written to {job.heatmap}; rename one of "
                "them, or predict them in two runs with different output=… folders"
            )
        writer[job.heatmap] = file
        jobs.append(job)
    return jobs


class _ImageFiles(Dataset):
    """Decodes and preprocesses in DataLoader workers; a failure becomes an ``error`` entry, not an exception."""

    def __init__(self, jobs: list[Job], input_size: tuple[int, int], preprocessing: Preprocessing) -> None:
        self.jobs, self.input_size, self.preprocessing = jobs, input_size, preprocessing

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            image = read_image_bgr(self.jobs[index].source)
            check_result_shape(image.shape[:2], "the image")
            tensor = normalize_image(letterbox(image, self.input_size), self.preprocessing)
        except Exception as err:  # any decoder failure is reported per file
            return {"index": index, "error": str(err) or type(err).__name__}
        return {"index": index, "image": image, "tensor": tensor}


def _write_outputs(job: Job, image_bgr: np.ndarray, prediction: Prediction, cfg: DictConfig) -> None:
    heatmap = heatmap_png(prediction.heatmap)
    overlay = overlay_jpeg(image_bgr, prediction.heatmap, cfg.overlay_alpha, cfg.colormap)
    atomic_write(job.heatmap, lambda tmp: tmp.write_bytes(heatmap))
    atomic_write(job.overlay, lambda tmp: tmp.write_bytes(overlay))


def _row(job: Job, image_bgr: np.ndarray, prediction: Prediction, output: Path) -> dict[str, Any]:
    row: dict[str, Any] = {
        "file": str(job.source),
        "height": image_bgr.shape[0],
        "width": image_bgr.shape[1],
        "class": prediction.label,
        "confidence": round(float(prediction.probabilities.max()), 6),
    }
    row |= {f"p_{n}": round(float(p), 6) for n, p in zip(prediction.class_names, prediction.probabilities, strict=True)}
    row |= {"heatmap": str(job.heatmap.relative_to(output)), "overlay": str(job.overlay.relative_to(output))}
    return row


def predict_jobs(predictor: Predictor, jobs: list[Job], cfg: DictConfig, output: Path) -> RunRecord:
    """Run every job in batches; write each image's results as soon as they exist."""
    record = RunRecord()
    loader = DataLoader(
        _ImageFiles(jobs, predictor.input_size, predictor.preprocessing),
        batch_size=cfg.batch_size or predictor.default_batch_size,
        num_workers=cfg.num_workers,
        collate_fn=list,
    )
    bar = tqdm(total=len(jobs), desc="umsi-predict", unit="img", disable=not cfg.progress)
    for batch in loader:
        good = [item for item in batch if "error" not in item]
        for item in batch:
            if "error" in item:
                source = jobs[item["index"]].source
                log.error("%s: %s (skipped)", source, item["error"])
                record.failures.append((str(source), item["error"]))
        if good:
            start = time.perf_counter()
            maps, probabilities = predictor.forward(torch.stack([item["tensor"] for item in good]))
            record.model_seconds += time.perf_counter() - start
            sizes = [item["image"].shape[:2] for item in good]
            for item, prediction in zip(
                good, predictor.postprocess(maps, probabilities, sizes, cfg.blur_sigma, cfg.calibration), strict=True
            ):
                job = jobs[item["index"]]
                _write_outputs(job, item["image"], prediction, cfg)
                record.rows.append(_row(job, item["image"], prediction, output))
        bar.update(len(batch))
    bar.close()
    return record


def _write_tables(output: Path, record: RunRecord, meta: dict[str, Any]) -> None:
    if record.rows:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(record.rows[0]))
        writer.writeheader()
        writer.writerows(record.rows)
        atomic_write(output / "predictions.csv", lambda tmp: tmp.write_text(buffer.getvalue()))
    failures = [{"file": f, "error": e} for f, e in record.failures]
    write_json(output / "predictions.json", {**meta, "predictions": record.rows, "failed": failures})


def run_predict(cfg: DictConfig, output: Path) -> int:
    """The whole command; returns the exit code (0 all written, 1 some inputs failed)."""
    colormap_code(cfg.colormap)  # reject a bad colormap before any work
    files, root = find_inputs(list(cfg.input) if OmegaConf.is_list(cfg.input) else str(cfg.input))
    jobs = plan_jobs(files, root, output)
    targets = [p for job in jobs for p in (job.heatmap, job.overlay)] + [output / "predictions.csv"]
    existing = [p for p in targets if p.exists()]
    if existing and not cfg.overwrite:
        raise PredictError(
            f"{len(existing)} results already exist in {output} (e.g. {existing[0]}); pass overwrite=true to replace "
            "them or choose another output=…"
        )
    checkpoint = resolve_checkpoint(cfg)
    predictor = load(checkpoint, device=cfg.device, precision=str(cfg.precision))
    try:
        predictor.calibration_for(str(cfg.calibration), None)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    log.info("%s on %s: %d images → %s", predictor.name, predictor.device, len(jobs), output)
    start = time.perf_counter()
    record = predict_jobs(predictor, jobs, cfg, output)
    seconds = time.perf_counter() - start
    meta = {"model": predictor.name, "checkpoint": str(checkpoint), "classes": predictor.class_names}
    _write_tables(output, record, meta)
    done = len(record.rows)
    per_image = f"{1000 * seconds / max(done, 1):.0f} ms per image"
    per_image += f" ({1000 * record.model_seconds / max(done, 1):.0f} ms in the model)"
    print(f"{done} of {len(jobs)} images written to {output} in {seconds:.1f} s: {per_image}, {predictor.device}")
    if record.failures:
        print(f"{len(record.failures)} failed:", file=sys.stderr)
        for source, error in record.failures:
            print(f"  {source}: {error}", file=sys.stderr)
        return 1
    return 0
