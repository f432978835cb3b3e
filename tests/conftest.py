"""Shared fixtures: a tiny synthetic dataset in the real layouts, and composed configs for tiny runs."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

os.environ.setdefault("WANDB_MODE", "disabled")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # make test runs one pytest-xdist worker per CPU: each worker, and the processes its tests start, on one torch
    # thread. With torch's default (one thread per CPU in every worker) the 2-core machine ran the suite in 376 s,
    # slower than one thread per worker (248 s): OpenMP threads of two processes wait on each other's barriers.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

from umsi.data.synthetic import generate
from umsi.paths import CONFIG_DIR


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """A Hydra job run in-process configures the root logger with handlers on the test's captured stderr; they
    are removed after the test, so a later test's log call does not write to a closed stream."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


TINY_DATA = dict(
    salicon_train=12,
    salicon_val=4,
    imp1k_per_class=4,
    imp1k_val_per_class=2,
    gdi_train=4,
    gdi_val=2,
    salicon_size=(48, 64),
    progress=False,
)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/synthetic-like tree: salicon/ (12 train, 4 val), imp1k/ (5 classes × 4, 2 held out), gdi/ (4 + 2)."""
    return generate(tmp_path_factory.mktemp("datasets") / "synthetic", seed=0, **TINY_DATA)


def tiny_overrides(datasets_dir: Path, output_dir: Path) -> list[str]:
    """Overrides for a fast CPU run on the tiny tree: the ~0.15 M-parameter ``model=tiny`` (a test that needs
    another network appends its own ``model=…``, the last one wins), 32×40 input, 1 epoch, no logger, no progress
    bar."""
    return [
        "model=tiny",
        f"paths.root_dir={output_dir}",
        f"paths.datasets_dir={datasets_dir}",
        f"paths.output_dir={output_dir}",
        "data.input_size=[32,40]",
        "data.num_workers=0",
        "data.val_batch_size=8",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "trainer.num_sanity_val_steps=0",
        "+trainer.enable_model_summary=false",
        "logger=none",
        "~callbacks.progress_bar",
    ]


@pytest.fixture
def hydra_conf() -> Iterator[Callable[..., DictConfig]]:
    """compose(overrides) inside an initialised Hydra (the pipeline re-composes stage configs)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        yield lambda overrides=(): compose(config_name="train", overrides=list(overrides))


@pytest.fixture
def tiny_cfg(
    hydra_conf: Callable[..., DictConfig], synthetic_root: Path, tmp_path: Path
) -> Callable[..., tuple[DictConfig, list[str]]]:
    """tiny_cfg(*extra) → (config, overrides) for a tiny run writing into tmp_path/run."""

    def make(*extra: str) -> tuple[DictConfig, list[str]]:
        overrides = [*tiny_overrides(synthetic_root, tmp_path / "run"), *extra]
        return hydra_conf(overrides), overrides

    return make


@pytest.fixture(scope="session")
def trained_once(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> Path:
    """The one tiny pretraining run of the session (1 epoch at 32×40, CSV log of every step) in
    ``<outputs>/2026-01-01/00-00-00/``; tests get it through ``trained``, which gives each module its own copy."""
    from umsi.training.runner import run

    outputs = tmp_path_factory.mktemp("trained_once")
    run_dir = outputs / "2026-01-01" / "00-00-00"
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        no_logger = tiny_overrides(synthetic_root, run_dir)
        overrides = [*(o for o in no_logger if o != "logger=none"), "logger=csv", "stage=pretrain"]
        overrides += ["trainer.log_every_n_steps=1"]  # a CSV row per step: what test_faults_tools resumes
        run(compose(config_name="train", overrides=overrides), overrides)
    return outputs


def copy_run(src: Path, dst: Path) -> Path:
    """A copy of the run folder ``src`` at ``dst`` that a test may resume or write into without touching ``src``;
    returns ``dst``. Checkpoints (~360 MB; the code writes them by temp file + rename, never in place) are
    hard-linked where possible; other files are copied, with the paths they record (``best_checkpoint.json``,
    ``config.yaml``, ...) moved from ``src`` to ``dst``, as if the run had been made there."""

    def copy(file: str, to: str) -> None:
        if file.endswith(".ckpt"):
            with contextlib.suppress(OSError):
                os.link(file, to)
                return
        shutil.copy2(file, to)
        if file.endswith((".json", ".yaml")):
            text = Path(to).read_text()
            Path(to).write_text(text.replace(str(src), str(dst)))

    return Path(shutil.copytree(src, dst, copy_function=copy, dirs_exist_ok=True))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, trained_once: Path) -> Iterator[Path]:
    """A tiny pretrained checkpoint (1 epoch at 32×40) and its CSV log in ``<outputs>/2026-01-01/00-00-00/``;
    yields the outputs folder (what ``ckpt=latest`` / ``checkpoints=[latest]`` search), the module's own copy of
    the session's one run (``copy_run``: what a test writes there stays in its module), and removes it after the
    module."""
    outputs = copy_run(trained_once, tmp_path_factory.mktemp("outputs"))
    yield outputs
    shutil.rmtree(outputs, ignore_errors=True)


def eval_cfg(synthetic_root: Path, outputs: Path, *extra: str) -> DictConfig:
    """The umsi-eval config for the tiny tree: ``checkpoints=[latest]`` searches ``outputs``; ``extra`` overrides."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(
            config_name="eval",
            overrides=[
                f"paths.root_dir={outputs.parent}",
                f"paths.datasets_dir={synthetic_root}",
                f"outputs_dir={outputs}",
                "progress=false",
                "examples=2",
                *extra,
            ],
        )
