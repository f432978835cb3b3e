"""Warnings said once per run: a run checks the same thing in several places (the pre-run check of every stage,
then each stage's datamodule), and the user should read each warning once.

:func:`warn_once` remembers what it has said; :func:`one_run` forgets it when a run ends, so the next run in the
same process (a sweep's next job, a test) is told again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_said: set[tuple[str, str]] = set()


def warn_once(logger: logging.Logger, message: str, *args: Any) -> bool:
    """``logger.warning(message, *args)`` unless the same text was said through ``logger`` earlier in this run;
    returns whether it was said now."""
    text = message % args if args else message
    key = (logger.name, text)
    if key in _said:
        return False
    _said.add(key)
    logger.warning("%s", text)
    return True


def forget_warnings() -> None:
    """Forget what :func:`warn_once` has said (the run is over)."""
    _said.clear()


@contextmanager
def one_run() -> Iterator[None]:
    """The span of one run: its :func:`warn_once` warnings are forgotten when it ends (normally or not)."""
    try:
        yield
    finally:
        forget_warnings()
