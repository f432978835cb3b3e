"""Low precision on the CPU with a measured accuracy cost: int8 ONNX files by ONNX Runtime's static quantization
and the accuracy check that decides whether a low-precision model may replace fp32.

* :func:`quantize_int8`: an fp32 ``umsi-export`` ONNX file → QDQ int8 file (per-channel int8 weights, uint8
  activations, ranges calibrated on real-like images by ONNX Runtime's ``quantize_static``). ONNX Runtime was
  chosen over PyTorch's PT2E x86 quantizer for the file it writes (docs/performance.md, "int8 and bf16 on the
  CPU"): it runs wherever ``umsi.load`` opens ``.onnx``, with no compile step on every load.
* :func:`accuracy_report`: a low-precision model's saliency maps and logits against fp32's on held-out images —
  map CC and KL per image against the fp32 map, and the share of images with the same predicted class.
  ``umsi-export quantize=int8`` writes its file only when the report passes; ``scripts/bench_keras.py`` reports
  the same numbers for the int8 and bf16 paths.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from umsi.data.layouts import IMAGE_SUFFIXES
from umsi.data.readers import read_image_bgr
from umsi.data.transforms import letterbox, normalize_image
from umsi.errors import ConfigError, UserError
from umsi.metrics.functional import cc, kl
from umsi.models.umsi import UMSIOutput

QUANTIZATION_METHOD = (
    "onnxruntime.quantization.quantize_static: QDQ, convolutions only, per-channel int8 weights, uint8 activations"
)
QUANTIZED_OPS = ["Conv"]
"""The ops made int8: the convolutions (about 90 % of the time). With every op quantized (the global branch's mean,
the class-conditioning Mul, Concat, Resize) the trained demo model's int8 class agreed with fp32 on 0 % of 12 held-out
images and its maps had CC 0.58 on average; convolutions only: 100 % and CC 0.96 (issue 27, docs/performance.md)."""
CALIBRATION_BATCH = 1  # the calibrator sees one image per call (its memory grows with the batch)


class AccuracyCheckError(UserError):
    """A low-precision model is too far from fp32 (the message gives the worst image, the means and the class
    agreement); nothing was written."""

    kind = "accuracy check failed"


@dataclass(frozen=True)
class AccuracyThresholds:
    """What a low-precision model must reach against fp32: map CC ≥ ``min_cc`` and KL ≤ ``max_kl`` (nats) on
    every held-out image, and the same predicted class on ≥ ``min_class_agreement`` (fraction) of them."""

    min_cc: float = 0.99
    max_kl: float = 0.01
    min_class_agreement: float = 0.99


def image_files(folder: str | Path, key: str) -> list[Path]:
    """The image files under ``folder`` (recursive, image suffixes), sorted; :class:`ConfigError` naming ``key``
    when it is not a folder or holds none."""
    path = Path(folder)
    if not path.is_dir():
        raise ConfigError(f"{key}={folder}: not a folder; give a folder of images like the ones the model will see")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError(f"{key}={folder}: the folder has no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def split_images(
    calibration_folder: str | Path,
    n: int,
    check_folder: str | Path | None = None,
    n_check: int = 50,
    seed: int = 0,
) -> tuple[list[Path], list[Path]]:
    """(calibration files, held-out check files): ``n`` images drawn (seeded) from ``calibration_folder``; the
    check images are ``n_check`` drawn from ``check_folder``, or, without one, from the calibration folder's images
    that were not drawn. :class:`ConfigError` naming the key when a set would be empty."""
    if n < 1 or n_check < 1:
        raise ConfigError(f"n={n}, n_check={n_check}: both must be at least 1")
    files = image_files(calibration_folder, "calibration_images")
    random.Random(seed).shuffle(files)
    calibration, rest = sorted(files[:n]), files[n:]
    if check_folder is not None:
        rest = [f for f in image_files(check_folder, "check_images") if f not in set(calibration)]
        random.Random(seed).shuffle(rest)
    if not rest:
        raise ConfigError(
            f"calibration_images={calibration_folder} has {len(files)} images, all used for calibration (n={n}), "
            "none left for the accuracy check: add images, lower n or pass check_images=<folder>"
        )
    return calibration, sorted(rest[:n_check])


def load_images(files: Sequence[Path], input_size: tuple[int, int], preprocessing: str) -> torch.Tensor:
    """Image files → (N, 3, H, W) float32 network inputs (letterboxed to ``input_size``, normalised like
    ``umsi.load(...).preprocess``). :class:`~umsi.errors.DataFileError` naming a file that does not decode."""
    return torch.stack([normalize_image(letterbox(read_image_bgr(f), input_size), preprocessing) for f in files])


def run_network(
    network: Callable[[torch.Tensor], UMSIOutput | tuple[torch.Tensor, torch.Tensor]],
    images: torch.Tensor,
    batch_size: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) → (saliency maps (N, sH, sW) float32, logits (N, K) float32) on the CPU, ``batch_size``
    images per call, without gradients."""
    maps, logits = [], []
    with torch.inference_mode():
        for chunk in images.split(batch_size):
            saliency, out = network(chunk)
            maps.append(saliency.float()[:, 0].cpu())
            logits.append(out.float().cpu())
    return torch.cat(maps), torch.cat(logits)


def accuracy_report(
    reference: tuple[torch.Tensor, torch.Tensor],
    candidate: tuple[torch.Tensor, torch.Tensor],
    names: Sequence[str],
    thresholds: AccuracyThresholds = AccuracyThresholds(),
) -> dict[str, Any]:
    """A low-precision model against fp32 on the same N images.

    ``reference`` / ``candidate``: (saliency maps (N, sH, sW), logits (N, K)); ``names``: the N image names.
    Per image, in float64, with the evaluation metrics in the MIT convention (:func:`umsi.metrics.functional.cc`,
    :func:`~umsi.metrics.functional.kl`): CC = Pearson correlation of the candidate map with the fp32 map (1 =
    the same up to an affine map); KL = KL(fp32 ‖ candidate) in nats of the sum-normalised maps (≥ 0 up to
    N·2.2e-16). Class agreement: the fraction of images whose argmax logit is the same. Returns JSON-ready
    ``{"images", "thresholds", "cc": {"mean", "worst", "worst_image"}, "kl": {...}, "class_agreement",
    "class_disagreements" (image names), "passed"}``.
    """
    ref_maps, ref_logits = (t.double() for t in reference)
    maps, logits = (t.double() for t in candidate)
    if ref_maps.shape != maps.shape or ref_logits.shape != logits.shape or len(names) != len(maps):
        raise ValueError(
            f"outputs differ in shape: maps {tuple(ref_maps.shape)} vs {tuple(maps.shape)}, logits "
            f"{tuple(ref_logits.shape)} vs {tuple(logits.shape)}, {len(names)} names"
        )
    correlation = cc(maps, ref_maps, convention="mit")
    divergence = kl(maps, ref_maps, convention="mit")
    same = ref_logits.argmax(dim=1) == logits.argmax(dim=1)
    worst_cc, worst_kl = int(correlation.argmin()), int(divergence.argmax())
    report = {
        "images": len(names),
        "thresholds": asdict(thresholds),
        "cc": {
            "mean": float(correlation.mean()),
            "worst": float(correlation[worst_cc]),
            "worst_image": str(names[worst_cc]),
        },
        "kl": {
            "mean": float(divergence.mean()),
            "worst": float(divergence[worst_kl]),
            "worst_image": str(names[worst_kl]),
        },
        "class_agreement": float(same.double().mean()),
        "class_disagreements": [str(n) for n, s in zip(names, same.tolist(), strict=True) if not s],
    }
    report["passed"] = passes(report, thresholds)
    return report


def passes(report: dict[str, Any], thresholds: AccuracyThresholds) -> bool:
    """Whether an :func:`accuracy_report` meets ``thresholds`` (a NaN fails)."""
    return bool(
        report["cc"]["worst"] >= thresholds.min_cc
        and report["kl"]["worst"] <= thresholds.max_kl
        and report["class_agreement"] >= thresholds.min_class_agreement
    )


def describe_report(report: dict[str, Any]) -> str:
    """One line: the worst image and the mean of CC and KL, the class agreement, the thresholds."""
    cc, kl, t = report["cc"], report["kl"], report["thresholds"]
    return (
        f"{report['images']} held-out images: map CC worst {cc['worst']:.4f} ({cc['worst_image']}), mean "
        f"{cc['mean']:.4f} (≥ {t['min_cc']:g} required); KL worst {kl['worst']:.4f} ({kl['worst_image']}), mean "
        f"{kl['mean']:.4f} (≤ {t['max_kl']:g}); class agreement {report['class_agreement']:.1%} "
        f"(≥ {t['min_class_agreement']:.0%})"
    )


def quantize_int8(fp32_onnx: str | Path, output: str | Path, calibration: torch.Tensor) -> Path:
    """Write the int8 version of an fp32 ``umsi-export`` ONNX file to ``output`` (overwritten).

    ``calibration``: (N, 3, H, W) float32 preprocessed images; ONNX Runtime's MinMax calibrator records every
    activation's range over them. QDQ format (QuantizeLinear/DequantizeLinear pairs that ONNX Runtime fuses into
    int8 kernels) on the convolutions (:data:`QUANTIZED_OPS`; the other ops stay float32), int8 weights with one
    scale per output channel, uint8 activations. The model is first
    pre-processed (graph optimisation; no symbolic shape inference, which the TF1 resize defeats). The ONNX
    metadata is not carried over: the caller sets it.
    """
    import tempfile

    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration.split(CALIBRATION_BATCH))

        def get_next(self) -> dict[str, Any] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"image": batch.contiguous().numpy()}

    # A weight channel that is all zero gets scale 0, which makes NumPy warn inside the quantizer; its
    # dequantized values, (q − zero point)·0 = 0, are exact all the same.
    with tempfile.TemporaryDirectory(prefix="umsi-quantize-") as tmp, np.errstate(invalid="ignore", divide="ignore"):
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_onnx), str(prepared), skip_symbolic_shape=True)
        # the quantizer logs one INFO line per copied bias through the root logger (thousands under Hydra's INFO)
        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.WARNING))
        try:
            quantize_static(
                str(prepared),
                str(output),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                op_types_to_quantize=QUANTIZED_OPS,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
        finally:
            root.setLevel(level)
    return Path(output)
