"""Distributed training: the SALICON mixing sampler as Lightning shards it, a 2-process ``ddp_spawn`` run against
a 1-process run of the real runner, and the ddp / ddp_spawn / SLURM launcher configs.

Everything runs on the CPU (gloo) with the tiny synthetic tree of conftest.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning_fabric.utilities.data import _set_sampler_epoch
from lightning_fabric.utilities.distributed import DistributedSamplerWrapper
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.trainer.connectors.data_connector import _get_distributed_sampler
from pytorch_lightning.trainer.states import RunningStage
from pytorch_lightning.utilities.data import _update_dataloader
from torch.utils.data import DataLoader

from conftest import tiny_overrides
from umsi.data.datasets import MixingSampler
from umsi.paths import CONFIG_DIR
from umsi.training.runner import build_datamodule, run

# 10 Imp1k train + 4 SALICON per epoch = 14 training items; 10 Imp1k val + 2 SALICON val = 12 validation items:
# both even, so the DistributedSampler of 2 ranks pads (repeats) nothing.
FINETUNE_TINY = ["stage=finetune", "data.salicon_per_epoch=4", "data.val_salicon_items=2"]
# lr 0 (Adam then moves nothing) and BatchNorm momentum 0 (running statistics stay put): the weights after the
# epoch are the initial ones in both runs, so only the distributed validation path can make them differ.
FROZEN = ["optimizer.lr=0", "model.bn_momentum=0.0", "logger=csv", "callbacks.model_checkpoint.save_last=false"]
DDP_SPAWN_CPU = ["trainer=ddp_spawn", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32"]
METRICS = ("val/cc", "val/kl", "val/nss", "val/acc")


# --- the SALICON mix under Lightning's distributed sampler ------------------------------------------------------


def _rank_loader(cfg: Any, rank: int, replicas: int) -> tuple[DataLoader, MixingSampler, int]:
    """The training loader of one rank, rebuilt as Lightning's data connector does for ``fit`` under DDP
    (``_get_distributed_sampler`` with ``shuffle=True`` for training, then ``_update_dataloader``). Each rank
    has its own DataModule, as each DDP process has. Returns (loader, its MixingSampler, Imp1k train size)."""
    datamodule = build_datamodule(cfg)
    loader = datamodule.train_dataloader()
    sampler = _get_distributed_sampler(loader, shuffle=True, overfit_batches=0, num_replicas=replicas, rank=rank)
    assert isinstance(sampler, DistributedSamplerWrapper)
    wrapped = _update_dataloader(loader, sampler, mode=RunningStage.TRAINING)
    assert isinstance(datamodule.sampler, MixingSampler)
    return wrapped, datamodule.sampler, len(datamodule.train_set.datasets[0])


def test_ranks_share_each_epochs_salicon_draw_without_overlap(tiny_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, _ = tiny_cfg(*FINETUNE_TINY)
    monkeypatch.setenv("PL_GLOBAL_SEED", str(cfg.seed))  # what seed_everything leaves for Lightning's sampler
    ranks = [_rank_loader(cfg, rank, 2) for rank in (0, 1)]
    base = ranks[0][2]
    draws: list[set[int]] = []
    by_rank: list[list[set[int]]] = []  # per epoch: the SALICON items of rank 0 and of rank 1
    for epoch in range(3):
        per_rank = []
        for loader, mixing, _ in ranks:
            _set_sampler_epoch(loader, epoch)  # what the fit loop calls at the start of every epoch
            assert mixing.epoch == epoch, "Lightning's wrapper must forward set_epoch to the MixingSampler"
            per_rank.append(list(loader.sampler))
        draw = {base + int(i) for i in ranks[0][1].pool_indices()}
        assert len(per_rank[0]) == len(per_rank[1]) == (base + 4) // 2 == len(ranks[0][0].sampler)
        assert not set(per_rank[0]) & set(per_rank[1]), f"epoch {epoch}: both ranks train on the same items"
        assert set(per_rank[0]) | set(per_rank[1]) == set(range(base)) | draw, f"epoch {epoch}: items lost"
        salicon = [{i for i in indices if i >= base} for indices in per_rank]
        assert salicon[0] | salicon[1] == draw and all(salicon), epoch
        if epoch:
            assert draw != draws[-1], f"epoch {epoch} repeats the previous SALICON draw"
            assert all(now != before for now, before in zip(salicon, by_rank[-1], strict=True)), epoch
        draws.append(draw)
        by_rank.append(salicon)


# --- a 2-process ddp_spawn run of the runner against a 1-process run ---------------------------------------------


class RecordRanks(Callback):
    """Writes ``rank<global rank>_of_<world size>.json`` (the training image paths of every epoch) into ``path``.
    Module level so that ddp_spawn can pickle it (``_target_: test_ddp.RecordRanks``)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.paths: dict[int, list[str]] = {}

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.paths.setdefault(trainer.current_epoch, []).extend(batch["path"])

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        name = f"rank{trainer.global_rank}_of_{trainer.world_size}.json"
        (self.path / name).write_text(json.dumps(self.paths))


def _val_metrics(csv_path: Path) -> dict[str, float]:
    with open(csv_path) as f:
        return {k: float(v) for row in csv.DictReader(f) for k, v in row.items() if v and k.startswith("val/")}


@pytest.fixture(scope="module")
def one_and_two_processes(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same frozen finetuning epoch run by ``umsi.training.runner.run`` in 1 process and with ddp_spawn in 2:
    {name: {summary, val (the CSV's validation metrics), ranks (folder of RecordRanks files)}}."""
    root = tmp_path_factory.mktemp("ddp")
    threads = torch.get_num_threads()
    results = {}
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        for name, extra in (("one", []), ("two", DDP_SPAWN_CPU)):
            out, ranks = root / name, root / f"{name}_ranks"
            recorder = f"+callbacks.record_ranks={{_target_:test_ddp.RecordRanks,path:'{ranks}'}}"
            overrides = [*tiny_overrides(synthetic_root, out), *FINETUNE_TINY, *FROZEN, recorder, *extra]
            # Lightning gives each CPU DDP process cores / processes threads; the same for the single process
            # (two threads on a busy 2-core machine run this ~10x slower)
            torch.set_num_threads(1)
            try:
                summary = run(compose(config_name="train", overrides=overrides), overrides)
            finally:
                torch.set_num_threads(threads)
            results[name] = {"summary": summary, "val": _val_metrics(out / "csv" / "metrics.csv"), "ranks": ranks}
    return results


@pytest.mark.timeout(240)
def test_ddp_spawn_validation_matches_one_process(one_and_two_processes: dict[str, Any]) -> None:
    one, two = one_and_two_processes["one"], one_and_two_processes["two"]
    assert sorted(p.name for p in one["ranks"].iterdir()) == ["rank0_of_1.json"]
    assert sorted(p.name for p in two["ranks"].iterdir()) == ["rank0_of_2.json", "rank1_of_2.json"]
    for name in METRICS:
        assert two["val"][name] == pytest.approx(one["val"][name], rel=1e-5, abs=1e-6), name
    # the final evaluation (one process, the best checkpoint) sees the same, unchanged weights; it scores as umsi-eval
    # does (original frame, Imp1k val only: tests/test_runs.py), so it is compared run to run, not with val/*
    for name in ("cc", "kl", "acc"):
        assert two["summary"]["model"][name] == pytest.approx(one["summary"]["model"][name], rel=1e-5), name
    # the real run's ranks split the epoch's 4 SALICON images (and everything else) without overlap
    paths = [json.loads((two["ranks"] / f"rank{r}_of_2.json").read_text())["0"] for r in (0, 1)]
    single = json.loads((one["ranks"] / "rank0_of_1.json").read_text())["0"]
    assert not set(paths[0]) & set(paths[1]) and len(paths[0]) == len(paths[1]) == 7
    assert set(paths[0]) | set(paths[1]) == set(single)  # same seeds: the same SALICON draw as the 1-process run
    assert sum("/salicon/" in p for p in single) == 4


def test_ddp_spawn_validation_loss_matches_one_process(one_and_two_processes: dict[str, Any]) -> None:
    one, two = one_and_two_processes["one"]["val"], one_and_two_processes["two"]["val"]
    for name in ("val/loss", "val/loss_kl", "val/loss_cc", "val/loss_cls"):
        assert two[name] == pytest.approx(one[name], rel=1e-5, abs=1e-6), name


# --- the configs -------------------------------------------------------------------------------------------------


@pytest.fixture
def composer() -> Iterator[Any]:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        yield lambda overrides, **kw: compose(config_name="train", overrides=overrides, **kw)


@pytest.mark.parametrize("choice", ["ddp", "ddp_spawn"])
def test_ddp_trainer_configs_instantiate(composer, choice: str, tmp_path: Path) -> None:
    overrides = [f"trainer={choice}", "trainer.accelerator=cpu", "trainer.devices=1", f"paths.output_dir={tmp_path}"]
    cfg = composer(overrides)
    assert cfg.trainer.sync_batchnorm is False and cfg.trainer.precision == "bf16-mixed"
    trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
    assert isinstance(trainer.strategy, DDPStrategy)
    assert trainer.strategy._ddp_kwargs == {"find_unused_parameters": False}
    assert trainer.strategy._start_method == ("spawn" if choice == "ddp_spawn" else "popen")


def test_slurm_launcher_config_composes(composer) -> None:
    overrides = [
        "hydra/launcher=slurm",
        "trainer=ddp",
        "trainer.devices=4",
        "trainer.num_nodes=2",
        "hydra.launcher.nodes=2",
        "hydra.launcher.tasks_per_node=4",
        "hydra.launcher.gpus_per_node=4",
        "hydra.launcher.partition=gpu",
    ]
    cfg = composer(overrides, return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"] == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher["nodes"] == cfg.trainer.num_nodes == 2
    assert launcher["tasks_per_node"] == launcher["gpus_per_node"] == cfg.trainer.devices == 4
    assert launcher["partition"] == "gpu" and launcher["timeout_min"] > 0
    assert launcher["submitit_folder"].startswith(cfg.hydra.sweep.dir) and launcher["submitit_folder"].endswith("%j")
    instantiate(cfg.hydra.launcher)  # the plugin's launcher class takes every key (nothing is submitted)
