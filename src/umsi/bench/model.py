"""Training throughput (the Lightning pipeline vs a plain PyTorch loop, same model, same run) and inference speed.

Training: the project's own path — Hydra config → ``SaliconDataModule`` reading JPEG/PNG from disk in DataLoader
workers → ``UMSILitModule`` → ``pl.Trainer`` with the project's callbacks and CSV logger — against a plain loop
(``UMSI`` + ``UMSILoss`` + Adam on in-memory tensors of the same shapes, autocast like the trainer). Both count
images per second over the steps after a warm-up.
"""

from __future__ import annotations

import contextlib
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from umsi.losses import UMSILoss
from umsi.models import UMSI
from umsi.models.registry import build_model


class StepTimer(pl.Callback):
    """Wall time of every training step end (CUDA-synchronised), to time the steps after a warm-up."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.batch_sizes: list[int] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        _sync(pl_module.device)
        self.times.append(time.perf_counter())
        self.batch_sizes.append(int(batch["image"].shape[0]))


def _sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _rate(times: list[float], sizes: list[int], warmup: int) -> float:
    """Images per second over steps warmup+1 … end (the interval between step ends)."""
    if len(times) <= warmup + 1:
        raise ValueError(f"need more than {warmup + 1} timed steps, got {len(times)}")
    return sum(sizes[warmup + 1 :]) / (times[-1] - times[warmup])


def compose_bench_config(
    config_dir: str,
    datasets_dir: Path,
    output_dir: Path,
    batch_size: int,
    input_size: tuple[int, int],
    accelerator: str,
    num_workers: int,
    steps: int,
    extra: list[str] | None = None,
) -> DictConfig:
    """The project's pretrain config on the given data, limited to ``steps`` training steps, no validation."""
    trainer = "gpu" if accelerator == "gpu" else "cpu"
    overrides = [
        "stage=pretrain",
        "experiment=reproduce",
        "model.pretrained=false",  # random encoder weights: the timing does not depend on them, no download
        f"trainer={trainer}",
        f"paths.datasets_dir={datasets_dir}",
        f"paths.output_dir={output_dir}",
        f"paths.root_dir={output_dir}",
        f"data.batch_size={batch_size}",
        f"data.input_size=[{input_size[0]},{input_size[1]}]",
        f"data.num_workers={num_workers}",
        "logger=csv",
        "~callbacks.progress_bar",
        "~callbacks.model_checkpoint",
        "~callbacks.best_checkpoint_handoff",
        "~callbacks.prediction_panel",
        "trainer.max_epochs=1000",
        "trainer.num_sanity_val_steps=0",
        f"+trainer.max_steps={steps}",
        "+trainer.limit_val_batches=0",
        "+trainer.enable_model_summary=false",
        *(extra or []),
    ]
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def bench_lightning(cfg: DictConfig, warmup: int) -> dict[str, Any]:
    """Images/s of ``trainer.fit`` on the configured DataModule (real files, real workers)."""
    from umsi.training.runner import _instantiate_all, build_datamodule, build_module

    pl.seed_everything(0, workers=True)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.class_names)
    timer = StepTimer()
    callbacks = [*_instantiate_all(cfg.get("callbacks")), timer]
    if cfg.get("scheduler"):
        callbacks.append(instantiate(cfg.scheduler))
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=_instantiate_all(cfg.get("logger")))
    trainer.fit(module, datamodule=datamodule)
    return {
        "images_per_second": _rate(timer.times, timer.batch_sizes, warmup),
        "steps": len(timer.times),
        "warmup_steps": warmup,
        "precision": str(cfg.trainer.precision),
        "num_workers": int(cfg.data.num_workers),
    }


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision.startswith("bf16"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision.startswith("16"):
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def bench_plain_loop(
    batch_size: int,
    input_size: tuple[int, int],
    device: str,
    precision: str,
    steps: int,
    warmup: int,
    model_cfg: DictConfig | None = None,
) -> dict[str, Any]:
    """The baseline: the same network (``model_cfg``, the framework's ``cfg.model``; ``UMSI()`` when None), loss
    and optimiser on random in-memory tensors, nothing else."""
    torch.manual_seed(0)
    dev = torch.device(device)
    model = (
        (UMSI() if model_cfg is None else build_model(OmegaConf.to_container(model_cfg, resolve=True))).to(dev).train()
    )
    criterion = UMSILoss(kl=10.0, cc=-3.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-7)
    h, w = input_size
    image = torch.randn(batch_size, 3, h, w, device=dev) * 50
    target = torch.rand(batch_size, 1, 2 * h, 2 * w, device=dev)
    fixations = (torch.rand(batch_size, 1, 2 * h, 2 * w, device=dev) > 0.999).float()
    label = torch.randint(0, 6, (batch_size,), device=dev)
    times = []
    for _ in range(steps):
        with _autocast(dev, precision):
            out = model(image)
            loss = criterion(out.saliency, out.logits, target, fixations, label)
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        optimizer.step()
        _sync(dev)
        times.append(time.perf_counter())
    return {"images_per_second": _rate(times, [batch_size] * steps, warmup), "steps": steps, "warmup_steps": warmup}


def bench_inference(
    input_size: tuple[int, int], device: str, batch_sizes: tuple[int, ...], repeats: int, options: dict[str, bool]
) -> dict[str, Any]:
    """Forward-pass latency per batch size (median of ``repeats`` after 2 warm-up passes), for each variant in
    fp32 / bf16, channels_last and torch.compile as given by ``options``."""
    dev = torch.device(device)
    results: dict[str, Any] = {}
    variants = [("fp32", False, False), ("bf16", False, False)]
    if options.get("channels_last"):
        variants += [("fp32+channels_last", True, False), ("bf16+channels_last", True, False)]
    if options.get("compile"):
        variants += [("fp32+compile", False, True)]
    for name, channels_last, compiled in variants:
        torch.manual_seed(0)
        model = UMSI().to(dev).eval()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        forward = torch.compile(model) if compiled else model
        precision = "bf16" if name.startswith("bf16") else "32"
        per_batch = {}
        for batch in batch_sizes:
            x = torch.randn(batch, 3, *input_size, device=dev) * 50
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            seconds = []
            with torch.inference_mode(), _autocast(dev, precision):
                for i in range(repeats + 2):
                    _sync(dev)
                    start = time.perf_counter()
                    forward(x)
                    _sync(dev)
                    if i >= 2:
                        seconds.append(time.perf_counter() - start)
            median = statistics.median(seconds)
            per_batch[str(batch)] = {"ms_per_batch": 1000 * median, "images_per_second": batch / median}
        results[name] = per_batch
    return results


def peak_memory(device: str) -> dict[str, float]:
    """Peak resident host memory of this process and peak CUDA memory allocated, in GiB."""
    peak = {"host_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if torch.device(device).type == "cuda":
        peak["gpu_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        peak["gpu_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
    return peak
