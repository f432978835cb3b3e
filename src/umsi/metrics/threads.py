"""The CPU thread engine of the evaluation metrics: torch on one thread while they run, and a batch cut into parts
scored side by side on a pool of Python threads (:func:`per_image_threads`).

The metrics issue many small operations (cache-sized blocks, per-image loops); for those OpenMP's fork/join costs more
than a second thread gains, and on a loaded machine a descheduled worker thread stalls every operation. Scoring parts
of a batch on separate Python threads (torch and NumPy release the GIL in their loops) uses the cores instead.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import torch
from threadpoolctl import ThreadpoolController

_threads_lock = threading.Lock()
_threads_saved: list[int] = []  # the intra-op thread count to restore, while metrics run on one thread
_threads_users = 0
_pool: ThreadPoolExecutor | None = None
_blas_limits: list[Any] = []  # threadpoolctl's limiter of NumPy's BLAS, to restore when the last metric ends
_blas: ThreadpoolController | None = None

_PARALLEL_MIN_PIXELS = 1 << 17
"""A CPU batch with fewer pixels is scored on the calling thread (handing it to other threads costs more)."""
INLINE_PIXELS = 1 << 15
"""torch runs operations on fewer elements on the calling thread anyway (its grain size): no thread settings."""


@contextlib.contextmanager
def _one_cpu_thread() -> Iterator[int]:
    """Run torch's CPU operations and NumPy's BLAS on one thread meanwhile (restored after; reentrant and
    thread-safe); yields the thread count that was set before, the CPU threads the caller allows.

    The metrics issue many small operations (cache-sized blocks, per-image loops). For those OpenMP's fork/join costs
    more than a second thread gains, and on a loaded machine a descheduled worker thread stalls every operation:
    measured on 2 cores at load 15, the metrics ran at 0.13× the pysaliency loop on 2 OpenMP threads and 2.2× on one.
    :func:`per_image_threads` uses the cores instead by scoring parts of a batch side by side."""
    global _threads_users
    with _threads_lock:
        if _threads_users == 0:
            _threads_saved.append(torch.get_num_threads())
            torch.set_num_threads(1)
            _blas_limits.append(_blas_controller().limit(limits=1))
        _threads_users += 1
        allowed = _threads_saved[0]
    try:
        yield allowed
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_saved.pop())
                _blas_limits.pop().restore_original_limits()


def _blas_controller() -> ThreadpoolController:
    """threadpoolctl's view of the BLAS libraries loaded (NumPy's OpenBLAS), found once: the block sums call NumPy's
    BLAS dot per row (:func:`umsi.metrics.sums._rowdot`), which must run on the calling thread: a multi-threaded
    OpenBLAS called from the pool's threads at once serialises them (measured 10–50× slower on 2 cores, issue 27)."""
    global _blas
    if _blas is None:  # BLAS only: a limiter restores every library it holds, torch's OpenMP included
        _blas = ThreadpoolController().select(user_api="blas")
    return _blas


def _thread_pool() -> ThreadPoolExecutor:
    global _pool
    with _threads_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="umsi-metrics")
        return _pool


def _forget_pool() -> None:  # a forked child has none of the parent's threads
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


def _per_image(value: Any, batch: int) -> bool | None:
    """True for a per-image argument of a batch (a tensor (B, ...) of 3+ dims, a list of B point sets), None for a
    shared one (scalars, a single (H, W) map), False for a batch-like argument of another size."""
    if isinstance(value, torch.Tensor) and value.dim() >= 3:
        return value.shape[0] == batch
    if isinstance(value, list | tuple):
        return len(value) == batch
    return None


_F = TypeVar("_F", bound=Callable[..., torch.Tensor])


def per_image_threads(fn: _F) -> _F:
    """Decorator for the per-image metrics ``fn(pred, ...) → (B,)``. On the CPU, torch runs on one thread meanwhile
    (:func:`_one_cpu_thread`) and a large enough batch is cut into consecutive parts of images scored side by side on
    as many Python threads as torch was allowed threads (torch and NumPy release the GIL in their loops), so both
    cores work without OpenMP's barriers; every image's value is the same as scored alone. Other devices: unchanged."""

    @functools.wraps(fn)
    def wrapper(pred: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if pred.device.type != "cpu" or pred.numel() <= INLINE_PIXELS:
            return fn(pred, *args, **kwargs)
        with _one_cpu_thread() as threads:
            batch = pred.shape[0]  # (B, H, W) or (B, 1, H, W); other shapes: fn raises
            workers = min(threads, batch) if pred.numel() >= _PARALLEL_MIN_PIXELS else 1
            values = (pred, *args, *kwargs.values())
            if workers < 2 or any(_per_image(v, batch) is False for v in values):
                return fn(pred, *args, **kwargs)
            bounds = [round(k * batch / workers) for k in range(workers + 1)]

            def part(value: Any, rows: slice) -> Any:
                return value[rows] if _per_image(value, batch) else value

            jobs = [
                _thread_pool().submit(
                    fn, *(part(a, rows) for a in (pred, *args)), **{k: part(v, rows) for k, v in kwargs.items()}
                )
                for rows in (slice(a, b) for a, b in itertools.pairwise(bounds))
            ]
            return torch.cat([job.result() for job in jobs])

    return wrapper  # type: ignore[return-value]


__all__ = ["INLINE_PIXELS", "per_image_threads"]
