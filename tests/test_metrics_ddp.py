"""The metric collection under Lightning DDP (2 CPU processes, ddp_spawn) gives the single-process values.

The images with fixations (the NSS/AUC mask) and with class labels are spread unevenly over the two ranks, so a
mean of per-rank means would differ from the mean over images: the summed-states design is what is tested.
"""

from __future__ import annotations

import os

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from torch.utils.data import DataLoader, Dataset

from umsi.data.postprocess import gaussian_blur
from umsi.metrics import functional as M
from umsi.metrics.collection import ClassAccuracy, MeanSaliencyMetric

os.environ.setdefault("WANDB_MODE", "disabled")

N_IMAGES, BATCH, SIZE, CLASSES = 16, 2, 12, 3  # 16 = 4 × (2 ranks × batch 2): no padded duplicates
WITH_FIXATIONS = (0, 1, 3, 5, 7)  # DistributedSampler without shuffling: rank 0 gets the even indices → 1 vs 4
UNLABELLED = (1, 2, 4)


class SyntheticSaliency(Dataset):
    """Deterministic per index: image (1, S, S), target map, fixation map (empty unless in WITH_FIXATIONS), label."""

    def __len__(self) -> int:
        return N_IMAGES

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(index)
        image = torch.rand(1, SIZE, SIZE, generator=gen, dtype=torch.float64)
        target = gaussian_blur(torch.rand(1, SIZE, SIZE, generator=gen, dtype=torch.float64), 1.5)
        fixations = (torch.rand(1, SIZE, SIZE, generator=gen) > 0.85).double()
        if index not in WITH_FIXATIONS:
            fixations.zero_()
        label = torch.tensor(-1 if index in UNLABELLED else index % CLASSES)
        return {"image": image, "saliency": target, "fixations": fixations, "label": label}


def predict(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed 'model': a blurred, squared input as the map; logits from simple image statistics."""
    saliency = gaussian_blur(image.pow(2), 1.0)
    flat = image.flatten(1)
    return saliency, torch.stack([flat.mean(1), flat.std(1), flat[:, :8].mean(1)], dim=1)


class MetricsOnly(pl.LightningModule):
    """Updates and logs the metric classes in ``validation_step`` (module level: ddp_spawn pickles it)."""

    def __init__(self) -> None:
        super().__init__()
        self.maps = torch.nn.ModuleDict(
            {"cc": MeanSaliencyMetric("cc"), "kl": MeanSaliencyMetric("kl", convention="mit")}
        )
        self.fix = torch.nn.ModuleDict(
            {
                "nss": MeanSaliencyMetric("nss", convention="mit"),
                "auc_borji": MeanSaliencyMetric("auc_borji", seed=1, n_splits=20),
            }
        )
        self.acc = ClassAccuracy(CLASSES)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        saliency, logits = predict(batch["image"])
        has_fix = batch["fixations"].flatten(1).sum(1) > 0
        for name, metric in self.maps.items():
            metric.update(saliency, batch["saliency"])
            self.log(f"val/{name}", metric)
        for name, metric in self.fix.items():
            metric.update(saliency, batch["fixations"], mask=has_fix)
            self.log(f"val/{name}", metric)
        self.acc.update(logits, batch["label"])
        self.log("val/acc", self.acc)


class _DestroyingLauncher(_MultiProcessingLauncher):
    """Destroys the gloo process group before a spawned worker exits. multiprocessing children skip atexit, so
    Lightning's own clean-up never runs there, and gloo's threads then abort the worker now and then at exit
    ("terminate called without an active exception")."""

    def _wrapping_function(self, *args, **kwargs) -> None:
        try:
            super()._wrapping_function(*args, **kwargs)
        finally:
            if torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()


class _SpawnDDP(DDPStrategy):
    def __init__(self) -> None:
        super().__init__(start_method="spawn")

    def _configure_launcher(self) -> None:
        self._launcher = _DestroyingLauncher(self, start_method="spawn")


def _validate(devices: int, strategy: str | DDPStrategy) -> dict[str, float]:
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy=strategy,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.validate(MetricsOnly(), DataLoader(SyntheticSaliency(), batch_size=BATCH, num_workers=0))
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def _direct() -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Per-image values over the whole dataset from the functions, and their plain means."""
    batch = next(iter(DataLoader(SyntheticSaliency(), batch_size=N_IMAGES)))
    saliency, logits = predict(batch["image"])
    fix, has_fix = batch["fixations"], batch["fixations"].flatten(1).sum(1) > 0
    values = {
        "cc": M.cc(saliency, batch["saliency"]),
        "kl": M.kl(saliency, batch["saliency"], convention="mit"),
        "nss": M.nss(saliency, fix, convention="mit")[has_fix],
        "auc_borji": M.auc_borji(saliency, fix, seed=1, n_splits=20)[has_fix],
    }
    labelled = batch["label"] >= 0
    acc = M.accuracy(logits, batch["label"])[labelled].mean()
    return {f"val/{k}": v.mean().item() for k, v in values.items()} | {"val/acc": acc.item()}, values


@pytest.mark.timeout(120)
def test_ddp_spawn_two_processes_match_one_process() -> None:
    single = _validate(1, "auto")
    double = _validate(2, _SpawnDDP())  # = strategy="ddp_spawn", with a clean worker exit
    expected, per_image = _direct()
    assert set(expected) <= set(single) and set(expected) <= set(double)
    for name, value in expected.items():
        assert single[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name
        assert double[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name
    # the masked NSS over 1 (rank 0) + 4 (rank 1) images: averaging the two rank means would give another value
    rank_means = (per_image["nss"][:1].mean() + per_image["nss"][1:].mean()) / 2
    assert abs(rank_means.item() - expected["val/nss"]) > 1e-3
