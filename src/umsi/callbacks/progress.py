"""One progress row for a whole ``umsi-train`` run: every stage's training and validation batches and the final
evaluation, with the elapsed time and an estimate of the time left, under Lightning's per-epoch bars."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar

KINDS = ("train", "val")
# seconds of a validation batch (forward only) per training batch (forward, backward, Adam) until one has run
VAL_COST_GUESS = 1 / 3


@dataclass(frozen=True)
class StagePlan:
    """The batches one stage will run: ``epochs`` × (``train_batches`` + ``val_batches``) plus Lightning's
    ``sanity_batches`` validation batches before the first epoch."""

    name: str
    epochs: int
    train_batches: int
    val_batches: int
    sanity_batches: int = 0

    @property
    def work(self) -> dict[str, int]:
        return {"train": self.epochs * self.train_batches, "val": self.epochs * self.val_batches + self.sanity_batches}


def limited_batches(batches: int, limit: int | float | None) -> int:
    """Lightning's ``limit_{train,val}_batches``: a fraction of the batches (float) or at most that many (int)."""
    if limit is None:
        return batches
    if isinstance(limit, float) and limit <= 1.0:
        return int(batches * limit)
    return min(batches, int(limit))


class RunProgress:
    """Counts the batches of a run by kind (``train``, ``val``) and times each kind on its own: the time between
    two batch ends goes to the kind of the batch that just ended (data loading, checkpoints and setup included).

    Time left = the remaining batches of each kind × that kind's mean seconds per batch so far; validation counts
    as :data:`VAL_COST_GUESS` of a training batch until one has run. ``final_batches`` are the evaluation batches
    after training (validation-like). ``clock`` returns seconds (``time.perf_counter`` by default).
    """

    def __init__(
        self,
        stages: Sequence[StagePlan],
        final_batches: int = 0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.stages = list(stages)
        self.total = {kind: sum(stage.work[kind] for stage in self.stages) for kind in KINDS}
        self.total["val"] += final_batches
        self.done = dict.fromkeys(KINDS, 0)
        self.seconds = dict.fromkeys(KINDS, 0.0)
        self.stage = self.stages[0].name if self.stages else ""
        self._clock = clock
        self.started = self._last = clock()

    def advance(self, kind: str, batches: int = 1) -> None:
        """``batches`` of ``kind`` have just ended (the time since the last one is theirs)."""
        now = self._clock()
        self.seconds[kind] += now - self._last
        self.done[kind] = min(self.done[kind] + batches, self.total[kind])
        self._last = now

    def skip(self, kind: str, batches: int) -> None:
        """``batches`` of ``kind`` that will not run (a resumed stage's finished epochs): counted done, untimed."""
        self.done[kind] = min(self.done[kind] + batches, self.total[kind])
        self._last = self._clock()

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return self._clock() - self.started

    def seconds_per_batch(self, kind: str) -> float | None:
        timed = self.done[kind]
        if self.seconds[kind] > 0 and timed:
            return self.seconds[kind] / timed
        train = self.seconds_per_batch("train") if kind == "val" else None
        return None if train is None else train * VAL_COST_GUESS

    def remaining(self) -> float | None:
        """Estimated seconds left; ``None`` before the first training batch has ended."""
        total = 0.0
        for kind in KINDS:
            left = self.total[kind] - self.done[kind]
            rate = self.seconds_per_batch(kind)
            if left and rate is None:
                return None
            total += left * (rate or 0.0)
        return total

    def fraction(self) -> float:
        """Share of the run done, in [0, 1]: elapsed / (elapsed + estimated time left); by batch count before the
        first estimate."""
        left = self.remaining()
        if left is None:
            total = sum(self.total.values())
            return sum(self.done.values()) / total if total else 0.0
        elapsed = self.elapsed()
        return 1.0 if elapsed + left <= 0 else elapsed / (elapsed + left)

    def describe(self) -> str:
        """``whole run: finetune, ~2:47 left`` — the text of the progress row (``estimating`` before the first
        training batch has ended)."""
        left = self.remaining()
        eta = "estimating" if left is None else f"~{_clock_text(left)} left"
        return f"whole run: {self.stage}, {eta}"


def _clock_text(seconds: float) -> str:
    seconds = max(0, math.ceil(seconds))
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else (f"{seconds // 60}:{seconds % 60:02d}")
    )


class RunProgressBar(RichProgressBar):
    """Lightning's rich progress bar (per-epoch training and validation rows) plus one row for the whole run when
    the runner hands it a :class:`RunProgress` (``run``): percent done of all stages and the final evaluation, the
    whole run's elapsed time and an estimate of the time left. Without ``run`` it is Lightning's bar."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run: RunProgress | None = None
        self._run_task: Any = None
        self._task_owner: Any = None

    def _show_run(self) -> None:
        if self.run is None or self.progress is None or not self.is_enabled:
            return
        percent = round(100 * self.run.fraction(), 1)
        if self._task_owner is not self.progress:  # Lightning makes a new rich Progress for each stage
            self._run_task = self.progress.add_task(self.run.describe(), total=100, completed=percent)
            task = self.progress._tasks[self._run_task]
            task.start_time = self.progress.get_time() - self.run.elapsed()  # elapsed = the whole run's
            self._task_owner = self.progress
        else:
            self.progress.update(self._run_task, completed=percent, description=self.run.describe())
        self.refresh()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if self.run is not None:
            stage = next((s for s in self.run.stages if s.name == self.run.stage), None)
            if stage is not None and trainer.current_epoch:  # resumed: its finished epochs are done
                self.run.skip("train", trainer.current_epoch * stage.train_batches)
                self.run.skip("val", trainer.current_epoch * stage.val_batches)
        self._show_run()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.run is not None:
            self.run.advance("train")
            self._show_run()

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)
        if self.run is not None:
            self.run.advance("val")
            self._show_run()
