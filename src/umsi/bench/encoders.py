"""Encoder presets side by side (``umsi-bench --parts encoders``): parameters and forward time per preset.

The presets are those ``hparams_search=encoders`` sweeps (``conf/hparams_search/encoders.yaml``), each composed as
``model=<preset>`` and built with random encoder weights (the time does not depend on them). The forward passes are
interleaved (one of each preset per round) so that a change in the machine's load falls on every preset alike;
each preset's time is the median over the rounds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from umsi.models.registry import build_model
from umsi.models.umsi import count_parameters


def sweep_presets(config_dir: str | Path) -> list[str]:
    """The ``model`` presets of ``hparams_search=encoders``, in sweep order."""
    sweep = OmegaConf.load(Path(config_dir) / "hparams_search" / "encoders.yaml")
    return [name.strip() for name in str(sweep.hydra.sweeper.params.model).split(",")]


def bench_encoders(
    config_dir: str | Path,
    presets: Sequence[str],
    input_size: tuple[int, int] = (240, 320),
    repeats: int = 5,
    device: str = "cpu",
) -> dict[str, dict[str, Any]]:
    """preset → {encoder, output_stride, parameters, ms_per_image (median forward time at batch 1),
    images_per_second}. Eval mode, ``torch.inference_mode``, one warm-up pass each."""
    from hydra import compose, initialize_config_dir

    models = {}
    with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base="1.3"):
        for preset in presets:
            cfg = compose(config_name="train", overrides=[f"model={preset}", "model.pretrained=false"])
            models[preset] = build_model(OmegaConf.to_container(cfg.model, resolve=True)).eval().to(device)
    image = torch.randn(1, 3, *input_size, device=device)
    times: dict[str, list[float]] = {preset: [] for preset in presets}
    with torch.inference_mode():
        for model in models.values():
            model(image)
        for _ in range(repeats):
            for preset, model in models.items():
                start = time.perf_counter()
                model(image)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                times[preset].append(time.perf_counter() - start)
    results = {}
    for preset, model in models.items():
        seconds = statistics.median(times[preset])
        results[preset] = {
            "encoder": str(getattr(model.encoder, "name", "")),
            "output_stride": int(model.encoder_stride),
            "parameters": count_parameters(model)[0],
            "ms_per_image": 1000 * seconds,
            "images_per_second": 1 / seconds,
        }
    return results


def encoders_markdown(results: dict[str, dict[str, Any]], input_size: Sequence[int], repeats: int) -> list[str]:
    """The report section: one row per preset."""
    lines = [
        "",
        f"## Encoders (forward pass at {input_size[0]}×{input_size[1]}, batch 1, median of {repeats} interleaved)",
        "",
        "| preset | encoder | output stride | parameters | ms per image | images/s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for preset, r in results.items():
        lines.append(
            f"| {preset} | {r['encoder']} | {r['output_stride']} | {r['parameters']:,} | {r['ms_per_image']:.0f} | "
            f"{r['images_per_second']:.2f} |"
        )
    return lines
