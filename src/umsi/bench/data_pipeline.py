"""Throughput of the CPU data pipeline: JPEG decoding, the per-sample training transform, and the DataLoader.

Three parts, each reported in images per second (best of ``repeats`` passes, after a short warm-up):

a. **decode**: OpenCV, Pillow and (when installed) simplejpeg (libjpeg-turbo) on JPEGs preloaded as bytes (no disk in
   the measurement) and read from files; also each decoder's *reduced-size* decode (JPEG DCT scaling, e.g. 480×640
   decoded straight to 240×320), with how much the letterboxed network input differs from the full decode + resize
   (in 8-bit levels);
b. **sample**: the per-sample CPU work of training on one thread (decode, map, fixations, letterbox, normalise;
   with and without augmentation), via the project's ``SaliencyDataset`` / ``SampleTransform``, with a per-stage
   breakdown and the reduced-decode variant;
c. **loader**: a ``torch.utils.data.DataLoader`` over ``SaliencyDataset`` for each worker count, ``pin_memory`` and
   ``persistent_workers`` setting (two epochs, so worker start-up shows in the first only), and the workers needed to
   feed a given GPU rate.

Without ``image_dir`` a SALICON-like folder is generated in a temporary directory (``umsi.data.synthetic``).
Run ``python -m umsi.bench.data_pipeline [--quick] [--out result.json]``.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import PIL
import torch
from PIL import Image
from torch.utils.data import DataLoader, default_collate

from umsi.data.datasets import SaliencyDataset
from umsi.data.layouts import SaliencyItem, read_salicon_fixations, salicon_items
from umsi.data.readers import read_image_bgr, read_map
from umsi.data.transforms import (
    LetterboxGeometry,
    SampleTransform,
    build_augmentation,
    fixation_map,
    letterbox,
    normalize_image,
    seed_augmentation_worker,
)
from umsi.models.card import DEFAULT_INPUT_SIZE

__all__ = ["GPU_TRAIN_CEILING", "bench_data_pipeline", "letterbox_from", "reduction_factor"]

GPU_TRAIN_CEILING = 208
"""images/s of a UMSI-shaped network training at batch 32 with bf16 on one H200 (shared/docs/engineering-notes.md)."""
MATERIAL_LEVELS = 1.0
"""A reduced-size decode counts as changing the network input materially above this mean |difference| (8-bit)."""
JPEG_SUFFIXES = (".jpg", ".jpeg")
_CV2_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
_WARMUP = 3

try:  # optional libjpeg-turbo binding
    import simplejpeg
except ImportError:  # pragma: no cover - depends on the environment
    simplejpeg = None


# ------------------------------------------------------------------------------------------------------- helpers


def reduction_factor(src_hw: tuple[int, int], input_size: tuple[int, int]) -> int:
    """Largest JPEG scale-down factor (1, 2, 4 or 8) whose decoded image is still at least as large as the area the
    letterbox resizes it to, so decoding smaller never upsamples (480×640 → 240×320 input: 2)."""
    geo = LetterboxGeometry.fit(src_hw, input_size)
    for factor in (8, 4, 2):
        if math.ceil(src_hw[0] / factor) >= geo.new_h and math.ceil(src_hw[1] / factor) >= geo.new_w:
            return factor
    return 1


def letterbox_from(image: np.ndarray, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> np.ndarray:
    """:func:`umsi.data.transforms.letterbox` of an image whose full size is ``src_hw`` but which was decoded at a
    reduced size: the geometry (new size, offsets) is the full image's, so the result lines up with the official one."""
    geo = LetterboxGeometry.fit(src_hw, dst_hw)
    resized = cv2.resize(image, (geo.new_w, geo.new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.zeros((*dst_hw, *image.shape[2:]), dtype=image.dtype)
    canvas[geo.top : geo.top + geo.new_h, geo.left : geo.left + geo.new_w] = resized.reshape(
        geo.new_h, geo.new_w, *image.shape[2:]
    )
    return canvas


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """OpenCV and torch on one thread (what one DataLoader worker gets), restored afterwards."""
    cv2_threads, torch_threads = cv2.getNumThreads(), torch.get_num_threads()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(cv2_threads)
        torch.set_num_threads(torch_threads)


def _time_loop(fn: Callable[[Any], object], inputs: Sequence[Any], repeats: int) -> dict[str, float]:
    """Call ``fn`` on every input ``repeats`` times (after a short warm-up); best pass in images/s and ms/image."""
    for x in inputs[:_WARMUP]:
        fn(x)
    passes = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        for x in inputs:
            fn(x)
        passes.append(time.perf_counter() - start)
    best = min(passes)
    return {
        "images_per_s": len(inputs) / best,
        "ms_per_image": 1e3 * best / len(inputs),
        "seconds": sum(passes),
    }


def _pillow_bgr(source: str | io.BytesIO, reduce_to: tuple[int, int] | None = None) -> np.ndarray:
    """Pillow decode to a BGR array; ``reduce_to`` (w, h) asks the JPEG loader for a DCT-scaled draft first."""
    with Image.open(source) as image:
        if reduce_to is not None:
            image.draft("RGB", reduce_to)
        return np.asarray(image.convert("RGB"))[..., ::-1]


def _diff_stats(images: Sequence[np.ndarray], references: Sequence[np.ndarray]) -> dict[str, float]:
    """|a − b| in 8-bit levels over all pixels: mean, worst per-image mean, 99th percentile, maximum."""
    diffs = [np.abs(a.astype(np.int16) - b.astype(np.int16)) for a, b in zip(images, references, strict=True)]
    flat = np.concatenate([d.ravel() for d in diffs])
    return {
        "mean_abs_diff_levels": float(flat.mean()),
        "max_image_mean_abs_diff_levels": float(max(d.mean() for d in diffs)),
        "p99_abs_diff_levels": float(np.percentile(flat, 99)),
        "max_abs_diff_levels": float(flat.max()),
    }


def machine_info() -> dict[str, Any]:
    """CPU count and the versions of the libraries that do the work."""
    jpeg = [line.split(":", 1)[1].strip() for line in cv2.getBuildInformation().splitlines() if "JPEG:" in line]
    try:
        from PIL import features

        pil_jpeg = features.version("jpg")
        pil_turbo = features.version_feature("libjpeg_turbo") if features.check_feature("libjpeg_turbo") else None
    except Exception:  # pragma: no cover - old Pillow
        pil_jpeg, pil_turbo = None, None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cv2": cv2.__version__,
        "cv2_threads": cv2.getNumThreads(),
        "cv2_jpeg": jpeg[0] if jpeg else None,
        "pillow": PIL.__version__,
        "pillow_libjpeg": pil_jpeg,
        "pillow_libjpeg_turbo": pil_turbo,
        "simplejpeg": simplejpeg.__version__ if simplejpeg is not None else "not installed",
        "cuda_available": torch.cuda.is_available(),
    }


# ----------------------------------------------------------------------------------------------------- the data


@contextlib.contextmanager
def _dataset(
    image_dir: Path | None, n_images: int, image_size: tuple[int, int], seed: int
) -> Iterator[tuple[list[Path], list[SaliencyItem] | None, dict[str, Any]]]:
    """(JPEG paths, SALICON items or None, description). ``image_dir``: a SALICON root (``images/train``), a folder
    holding ``salicon/`` (the synthetic tree), or any folder of JPEGs (decode only); None: generate one."""
    with contextlib.ExitStack() as stack:
        info: dict[str, Any] = {}
        if image_dir is None:
            from umsi.data.synthetic import generate

            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="umsi-bench-")))
            start = time.perf_counter()
            generate(
                tmp,
                seed=seed,
                salicon_train=n_images,
                salicon_val=0,
                imp1k_per_class=0,
                imp1k_val_per_class=0,
                gdi_train=0,
                gdi_val=0,
                salicon_size=tuple(image_size),
                progress=False,
            )
            info.update(source="synthetic (umsi.data.synthetic)", generate_s=time.perf_counter() - start)
            image_dir = tmp
        image_dir = Path(image_dir)
        root = next((r for r in (image_dir / "salicon", image_dir) if (r / "images" / "train").is_dir()), None)
        items = None
        if root is not None:
            items = salicon_items(root, "train", label=0)[:n_images]
            jpegs = [item.image for item in items if item.image.suffix.lower() in JPEG_SUFFIXES]
        else:
            jpegs = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in JPEG_SUFFIXES)[:n_images]
        if not jpegs:
            raise ValueError(f"no JPEG images found in {image_dir}")
        info.setdefault("source", str(image_dir))
        info.update(layout="salicon" if items is not None else "jpeg folder (decode only)", n_images=len(jpegs))
        yield jpegs, items, info


# --------------------------------------------------------------------------------------------------- a. decoding


def _decoders(input_size: tuple[int, int]) -> dict[str, dict[str, Callable[[Any], np.ndarray]] | str]:
    """Per decoder: BGR decoders keyed by mode, taking (path, bytes, full (h, w)); a string when unavailable."""

    def cv2_reduced(path: Path, data: bytes, hw: tuple[int, int], from_disk: bool) -> np.ndarray:
        factor = reduction_factor(hw, input_size)
        flag = _CV2_REDUCED.get(factor, cv2.IMREAD_COLOR)
        if from_disk:
            return cv2.imread(str(path), flag)
        return cv2.imdecode(np.frombuffer(data, np.uint8), flag)

    def pil_reduced(source: str | io.BytesIO, hw: tuple[int, int]) -> np.ndarray:
        geo = LetterboxGeometry.fit(hw, input_size)
        return _pillow_bgr(source, (geo.new_w, geo.new_h))

    out: dict[str, dict[str, Callable[[Any], np.ndarray]] | str] = {
        "opencv": {
            "memory": lambda a: cv2.imdecode(np.frombuffer(a[1], np.uint8), cv2.IMREAD_COLOR),
            "disk": lambda a: cv2.imread(str(a[0]), cv2.IMREAD_COLOR),
            "reduced_memory": lambda a: cv2_reduced(*a, from_disk=False),
            "reduced_disk": lambda a: cv2_reduced(*a, from_disk=True),
        },
        "pillow": {
            "memory": lambda a: _pillow_bgr(io.BytesIO(a[1])),
            "disk": lambda a: _pillow_bgr(str(a[0])),
            "reduced_memory": lambda a: pil_reduced(io.BytesIO(a[1]), a[2]),
            "reduced_disk": lambda a: pil_reduced(str(a[0]), a[2]),
        },
    }
    if simplejpeg is None:
        out["simplejpeg"] = "not installed"
    else:

        def sj_reduced(data: bytes, hw: tuple[int, int]) -> np.ndarray:
            geo = LetterboxGeometry.fit(hw, input_size)
            return simplejpeg.decode_jpeg(data, colorspace="BGR", min_height=geo.new_h, min_width=geo.new_w)

        out["simplejpeg"] = {
            "memory": lambda a: simplejpeg.decode_jpeg(a[1], colorspace="BGR"),
            "disk": lambda a: simplejpeg.decode_jpeg(a[0].read_bytes(), colorspace="BGR"),
            "reduced_memory": lambda a: sj_reduced(a[1], a[2]),
            "reduced_disk": lambda a: sj_reduced(a[0].read_bytes(), a[2]),
        }
    return out


def _bench_decode(jpegs: Sequence[Path], input_size: tuple[int, int], repeats: int) -> dict[str, Any]:
    """Part a: images/s per decoder and mode on one thread, and the letterbox difference of reduced decodes."""
    blobs = [p.read_bytes() for p in jpegs]
    full = [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) for b in blobs]
    sizes = [img.shape[:2] for img in full]
    args = list(zip(jpegs, blobs, sizes, strict=True))
    reference = [letterbox(img, input_size) for img in full]
    factors = sorted({reduction_factor(hw, input_size) for hw in sizes})
    out: dict[str, Any] = {
        "image_sizes": sorted({f"{h}x{w}" for h, w in sizes}),
        "mean_jpeg_kib": float(np.mean([len(b) for b in blobs]) / 1024),
        "reduction_factors": factors,
        "reference": "opencv full decode + letterbox (cv2.INTER_LINEAR)",
        "decoders": {},
    }
    with _single_thread():
        for name, modes in _decoders(input_size).items():
            if isinstance(modes, str):
                out["decoders"][name] = {"status": modes}
                continue
            result: dict[str, Any] = {"status": "ok"}
            for mode, fn in modes.items():
                result[mode] = _time_loop(fn, args, repeats)
            for mode in ("memory", "reduced_memory"):
                boxed = [letterbox_from(np.ascontiguousarray(modes[mode](a)), a[2], input_size) for a in args]
                result[f"{mode}_letterbox_vs_reference"] = _diff_stats(boxed, reference)
            decoded = modes["reduced_memory"](args[0])
            result["reduced_shape_of_first"] = list(decoded.shape[:2])
            reduced = result["reduced_memory_letterbox_vs_reference"]["mean_abs_diff_levels"]
            result["reduced_changes_input_materially"] = reduced > MATERIAL_LEVELS
            out["decoders"][name] = result
    out["material_threshold_levels"] = MATERIAL_LEVELS
    return out


# ------------------------------------------------------------------------------------------- b. per-sample work


def _reduced_sample(item: SaliencyItem, transform: SampleTransform) -> dict[str, torch.Tensor]:
    """What ``SampleTransform`` without augmentation gives, but with the image decoded at reduced size by OpenCV
    (the saliency map, full size as in SALICON, gives the image's size). Maps and fixations stay full resolution."""
    saliency = read_map(item.saliency)
    hw = saliency.shape[:2]
    flag = _CV2_REDUCED.get(reduction_factor(hw, transform.input_size), cv2.IMREAD_COLOR)
    image = cv2.imread(str(item.image), flag)
    fixations = read_salicon_fixations(item.fixations) if item.fixations else np.zeros((0, 2), np.float32)
    saliency_out = letterbox(saliency, transform.output_size).astype(np.float32) / 255.0
    return {
        "image": normalize_image(letterbox_from(image, hw, transform.input_size), transform.preprocessing),
        "saliency": torch.from_numpy(saliency_out)[None],
        "fixations": torch.from_numpy(fixation_map(fixations, hw, transform.output_size))[None],
    }


def _bench_sample(
    items: Sequence[SaliencyItem], input_size: tuple[int, int], repeats: int, batch_size: int
) -> dict[str, Any]:
    """Part b: one thread, ``SaliencyDataset.__getitem__`` with and without augmentation, stages (collate: the
    in-process ``default_collate`` of one batch, per image), reduced decode."""
    plain = SaliencyDataset(items, SampleTransform(input_size))
    augmented = SaliencyDataset(items, SampleTransform(input_size, augmentation=build_augmentation(seed=0)))
    indices = list(range(len(items)))
    images = [read_image_bgr(item.image) for item in items]
    maps = [read_map(item.saliency) for item in items]
    fixations = [read_salicon_fixations(item.fixations) if item.fixations else np.zeros((0, 2)) for item in items]
    triples = list(zip(images, maps, fixations, strict=True))
    batch = [plain[i] for i in range(min(batch_size, len(items)))]
    sample_bytes = sum(v.numel() * v.element_size() for v in batch[0].values() if isinstance(v, torch.Tensor))
    out: dict[str, Any] = {"sample_bytes": int(sample_bytes), "threads": 1}
    with _single_thread():
        out["no_augmentation"] = _time_loop(plain.__getitem__, indices, repeats)
        out["augmentation"] = _time_loop(augmented.__getitem__, indices, repeats)
        out["reduced_decode_no_augmentation"] = _time_loop(
            lambda i: _reduced_sample(items[i], plain.transform), indices, repeats
        )
        out["stages_ms_per_image"] = {
            name: _time_loop(fn, inputs, repeats)["ms_per_image"]
            for name, fn, inputs in (
                ("decode_image_cv2_imread", lambda it: read_image_bgr(it.image), items),
                ("read_map_png", lambda it: read_map(it.saliency), items),
                (
                    "read_fixations_mat",
                    lambda it: read_salicon_fixations(it.fixations) if it.fixations else None,
                    items,
                ),
                ("transform_no_augmentation", lambda t: plain.transform(*t), triples),
                ("transform_augmentation", lambda t: augmented.transform(*t), triples),
            )
        }
        collate = _time_loop(lambda _: default_collate(batch), [None] * 5, repeats)
        out["stages_ms_per_image"]["collate"] = collate["ms_per_image"] / len(batch)
    return out


# ----------------------------------------------------------------------------------------------- c. DataLoader


def _bench_loader(
    items: Sequence[SaliencyItem],
    input_size: tuple[int, int],
    workers: Sequence[int],
    batch_size: int,
    epochs: int,
    augment: bool,
) -> list[dict[str, Any]]:
    """Part c: images/s of a DataLoader per (num_workers, pin_memory, persistent_workers), epoch by epoch."""
    augmentation = build_augmentation(seed=0) if augment else None
    dataset = SaliencyDataset(items, SampleTransform(input_size, augmentation=augmentation))
    results = []
    for num_workers in workers:
        for pin_memory in (False, True):
            for persistent in (False, True) if num_workers > 0 else (False,):
                loader = DataLoader(
                    dataset,
                    batch_size=batch_size,
                    shuffle=True,
                    num_workers=num_workers,
                    pin_memory=pin_memory,
                    persistent_workers=persistent,
                    worker_init_fn=seed_augmentation_worker if num_workers > 0 else None,
                    generator=torch.Generator().manual_seed(0),
                )
                epoch_rates = []
                with warnings.catch_warnings():  # pin_memory without an accelerator warns and does nothing
                    warnings.simplefilter("ignore")
                    for _ in range(max(1, epochs)):
                        start, count = time.perf_counter(), 0
                        for batch in loader:
                            count += int(batch["image"].shape[0])
                        epoch_rates.append(count / (time.perf_counter() - start))
                del loader  # ends persistent workers before the next setting starts its own
                results.append(
                    {
                        "num_workers": num_workers,
                        "pin_memory": pin_memory,
                        "persistent_workers": persistent,
                        "epoch_images_per_s": epoch_rates,
                        "first_epoch_images_per_s": epoch_rates[0],
                        "steady_images_per_s": epoch_rates[-1],
                    }
                )
    return results


def _workers_needed(rate: float, targets: Sequence[float]) -> dict[str, int | None]:
    """ceil(target / per-worker rate) for each target (string keys for JSON)."""
    return {str(t): (math.ceil(t / rate) if rate > 0 else None) for t in targets}


# ----------------------------------------------------------------------------------------------------- the bench


def bench_data_pipeline(
    image_dir: Path | None = None,
    n_images: int = 200,
    input_size: Sequence[int] = DEFAULT_INPUT_SIZE,
    repeats: int = 1,
    workers: Sequence[int] = (0, 1, 2),
    *,
    image_size: Sequence[int] = (480, 640),
    batch_size: int = 32,
    epochs: int = 2,
    augment: bool = False,
    targets: Sequence[float] = (GPU_TRAIN_CEILING,),
    seed: int = 0,
) -> dict[str, Any]:
    """Measure parts a–c (module docstring) and return a JSON-serialisable dict with the keys ``machine``, ``data``,
    ``config``, ``decode``, ``sample``, ``loader``, ``workers_needed`` and ``seconds``.

    ``image_size`` (H, W) is the size of the generated images (only without ``image_dir``); ``augment`` applies to
    the loader (the per-sample part measures both); ``targets``: images/s to feed, for ``workers_needed``.
    ``sample``/``loader``/``workers_needed`` are None for a plain JPEG folder (no maps or fixations)."""
    start = time.perf_counter()
    input_hw = (int(input_size[0]), int(input_size[1]))
    image_hw = (int(image_size[0]), int(image_size[1]))
    result: dict[str, Any] = {
        "machine": machine_info(),
        "config": {
            "n_images": n_images,
            "input_size": list(input_hw),
            "repeats": repeats,
            "workers": list(workers),
            "batch_size": batch_size,
            "epochs": epochs,
            "loader_augment": augment,
            "targets_images_per_s": list(targets),
            "rates": "best of `repeats` passes after a warm-up; decode and sample parts on one thread",
        },
    }
    with _dataset(image_dir, n_images, image_hw, seed) as (jpegs, items, info):
        result["data"] = info
        result["decode"] = _bench_decode(jpegs, input_hw, repeats)
        result["sample"] = result["loader"] = result["workers_needed"] = None
        if items:
            sample = _bench_sample(items, input_hw, repeats, batch_size)
            loader = _bench_loader(items, input_hw, workers, batch_size, epochs, augment)
            result["sample"], result["loader"] = sample, loader
            one_worker = [r["steady_images_per_s"] for r in loader if r["num_workers"] == 1]
            result["workers_needed"] = {
                "per_worker_images_per_s": {
                    "sample_no_augmentation": sample["no_augmentation"]["images_per_s"],
                    "sample_augmentation": sample["augmentation"]["images_per_s"],
                    "sample_reduced_decode": sample["reduced_decode_no_augmentation"]["images_per_s"],
                    "loader_1_worker_steady": statistics.median(one_worker) if one_worker else None,
                },
                "no_augmentation": _workers_needed(sample["no_augmentation"]["images_per_s"], targets),
                "augmentation": _workers_needed(sample["augmentation"]["images_per_s"], targets),
                "reduced_decode_no_augmentation": _workers_needed(
                    sample["reduced_decode_no_augmentation"]["images_per_s"], targets
                ),
                "loader_1_worker": _workers_needed(statistics.median(one_worker), targets) if one_worker else None,
                "note": "ceil(target / per-worker rate); the sample rates are one thread's __getitem__ alone, the "
                "loader rate includes collate and the transfer to the main process; one free core per worker assumed",
            }
    result["seconds"] = time.perf_counter() - start
    return result
