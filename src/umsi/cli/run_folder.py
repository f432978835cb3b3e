"""Run folders of their own: a new run never shares a folder with another, and a folder a live run holds is refused.

The Hydra callback :class:`RunFolder` (``hydra.callbacks.run_folder`` in ``conf/hydra/default.yaml``) acts before
Hydra makes the run folder and writes ``.hydra/`` into it:

* a folder that comes from the config (``outputs/<date>/<time>``, ``outputs/multirun/<date>/<time>``) is claimed
  with :func:`claim_new_folder`: ``os.mkdir`` either creates a folder or fails because it exists, atomically, so
  two runs started in the same second get ``<time>`` and ``<time>_2``. A multirun's jobs go into the claimed sweep
  folder (``<sweep>/<job number>``);
* a folder given on the command line (``hydra.run.dir=…``, ``hydra.sweep.dir=…``, e.g. to resume a stopped run
  with ``ckpt_path=last``) is used as given;
* either way the folder is held (:func:`hold_folder`: a POSIX lock, ``lockf``, on ``<folder>/.umsi-run.lock`` for the
  life of the process, not inherited by its forked children) and a run started in a folder another live run holds
  ends with one line and exit code 2. The operating system drops the lock when the process ends, however it ends
  (even ``kill -9``, while its DataLoader workers still wind down), so a stopped run's folder can always be resumed.

The later processes of a multi-process run (Lightning's DDP children, which are started with the first one's
``hydra.run.dir``; ``torchrun``) take the folder as configured and hold nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

from umsi.cli.config_check import report_error, tool_name
from umsi.errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no lockf; the folders are still unique, but a held folder is not refused
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".umsi-run.lock"
# the launchers' rank variables, read as Lightning reads them (lightning_fabric.utilities.rank_zero._get_rank)
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
_HELD: dict[Path, int] = {}  # folder → the open, locked file descriptor, kept until the process ends


class RunFolderBusyError(UserError):
    """Another live process holds the run folder; the message names it and its process id."""

    kind = "run folder busy"


def is_first_process() -> bool:
    """False in the later processes of a multi-process run (Lightning's DDP children, ``torchrun``, ``srun``):
    they use the folder their first process claimed and holds."""
    rank = next((os.environ[name] for name in _RANK_VARIABLES if name in os.environ), "0")
    return int(rank) == 0


def claim_new_folder(folder: str | Path) -> Path:
    """Create ``folder`` (and its parents) for a new run and return it, or, when it already exists, the first of
    ``<folder>_2``, ``<folder>_3``… that does not and that this call created."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    candidate, number = folder, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            number += 1
            candidate = folder.with_name(f"{folder.name}_{number}")


def hold_folder(folder: str | Path) -> None:
    """Lock ``folder`` (created if needed) for this process until it ends; holding it again is a no-op.

    Raises :class:`RunFolderBusyError` naming the folder and the holder's process id when another live process
    holds it."""
    folder = Path(folder).absolute()
    if folder in _HELD or fcntl is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        # a POSIX record lock, not flock: it belongs to this process alone, so a forked child (a DataLoader worker)
        # does not keep the folder held after this process is killed
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunFolderBusyError(
            f"{folder} is in use by a run that is still going (process {holder}). Wait for it to end, or start "
            "this run in a folder of its own: leave hydra.run.dir at its default, or give another one"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[folder] = fd


def _given_on_command_line(config: DictConfig, key: str) -> bool:
    return any(line.lstrip("+~").split("=", 1)[0] == key for line in config.hydra.overrides.hydra)


def _quoted(value: str) -> str:
    """A value for a Hydra override, quoted so any path reads back as itself."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class RunFolder(Callback):
    """Claims (or takes as given) and holds the run folder in RUN mode, the sweep folder in MULTIRUN mode."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._take(config, "run", kwargs.get("config_name") or "train")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._take(config, "sweep", kwargs.get("config_name") or "train")

    @staticmethod
    def _take(config: DictConfig, mode: str, config_name: str) -> None:
        if not is_first_process():
            return
        key = f"hydra.{mode}.dir"
        folder = str(config.hydra[mode].dir)
        try:
            if not _given_on_command_line(config, key):
                folder = str(claim_new_folder(folder))
                with read_write(config.hydra), open_dict(config.hydra):
                    config.hydra[mode].dir = folder
                    if mode == "sweep":  # each job's config is composed again from these overrides
                        config.hydra.overrides.hydra.append(f"{key}={_quoted(folder)}")
            hold_folder(folder)
        except UserError as err:
            report_error(tool_name(config_name), err)
