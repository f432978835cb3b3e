"""The whole run's progress row: batches counted by kind, the time left from each kind's own seconds per batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import tiny_overrides
from umsi.callbacks.progress import RunProgress, StagePlan, limited_batches
from umsi.training.runner import plan_run


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_time_left_uses_each_kind_of_batch_own_speed() -> None:
    clock = Clock()
    stages = [
        StagePlan("pretrain", epochs=2, train_batches=10, val_batches=4, sanity_batches=2),
        StagePlan("finetune", epochs=1, train_batches=6, val_batches=5),
    ]
    progress = RunProgress(stages, final_batches=5, clock=clock)
    assert progress.total == {"train": 2 * 10 + 6, "val": 2 * 4 + 2 + 5 + 5}
    assert progress.remaining() is None and progress.describe() == "whole run: pretrain, estimating"
    for _ in range(2):  # sanity check: 2 validation batches of 0.5 s, before any training batch
        clock.now += 0.5
        progress.advance("val")
    assert progress.remaining() is None  # no training batch yet
    for _ in range(10):  # epoch 0: training batches of 2 s each
        clock.now += 2.0
        progress.advance("train")
    # 16 training batches left at 2 s, 18 validation batches at 0.5 s
    assert progress.remaining() == pytest.approx(16 * 2.0 + 18 * 0.5)
    assert progress.elapsed() == pytest.approx(21.0)
    assert progress.fraction() == pytest.approx(21.0 / (21.0 + 41.0))
    assert progress.describe() == "whole run: pretrain, ~0:41 left"


def test_validation_counts_a_third_of_a_training_batch_until_one_has_run() -> None:
    clock = Clock()
    progress = RunProgress([StagePlan("pretrain", epochs=1, train_batches=4, val_batches=3)], clock=clock)
    clock.now += 3.0
    progress.advance("train")
    assert progress.remaining() == pytest.approx(3 * 3.0 + 3 * 1.0)
    progress.skip("train", 3)  # a resumed stage's finished epoch: done, not timed
    assert progress.done["train"] == 4 and progress.seconds_per_batch("train") == pytest.approx(3.0 / 4)
    progress.stage = "finetune"
    for _ in range(3):
        clock.now += 3700 / 3
        progress.advance("val")
    assert progress.remaining() == 0.0 and progress.fraction() == 1.0
    progress.advance("val")  # never past the total
    assert progress.done["val"] == 3


def test_lightning_batch_limits() -> None:
    assert limited_batches(100, None) == 100
    assert limited_batches(100, 0.25) == 25
    assert limited_batches(100, 60) == 60
    assert limited_batches(40, 60) == 40
    assert limited_batches(100, 1.0) == 100


def test_a_run_is_planned_only_when_its_row_is_shown(hydra_conf, synthetic_root: Path, tmp_path: Path) -> None:
    overrides = tiny_overrides(synthetic_root, tmp_path / "run")
    quiet = hydra_conf([*overrides, "stage=pretrain"])  # the tests' runs: no progress bar, nothing to count
    assert plan_run({"pretrain": quiet}) is None
    shown = hydra_conf([*(o for o in overrides if o != "~callbacks.progress_bar"), "stage=pretrain"])
    progress = plan_run({"pretrain": shown})
    assert progress is not None
    # 12 SALICON training images in batches of 4; 4 val images in one batch of 8; 1 epoch, no sanity check
    assert progress.stages == [StagePlan("pretrain", epochs=1, train_batches=3, val_batches=1, sanity_batches=0)]
    assert progress.total == {"train": 3, "val": 1 + 1}
