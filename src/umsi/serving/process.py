"""``umsi-serve`` in a child process, for the tests and ``make bench``: start it on a free port, wait until
``GET /health`` answers, stop it with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class ServerProcess:
    """A running ``umsi-serve``: its process, base URL (``http://127.0.0.1:<port>``), log file and ``/health``."""

    process: subprocess.Popen
    url: str
    log: Path
    health: dict[str, Any]

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the OS's choice; another process could take it before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def get_json(url: str, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of a GET; (0, {}) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, {}
    except (OSError, ValueError):
        return 0, {}


def start_server(overrides: Sequence[str], log: Path, timeout: float = 600.0, port: int | None = None) -> ServerProcess:
    """``python -m umsi.cli.serve host=127.0.0.1 port=<free> *overrides`` with its output in ``log`` (and Hydra's
    run folder next to it, not under ./outputs); returns once ``/health`` answers 200. Raises ``RuntimeError``
    with the log's end when the process exits first or ``timeout`` seconds pass (it is stopped then)."""
    port = port or free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "umsi.cli.serve", "host=127.0.0.1", f"port={port}", *overrides]
    command.append(f"hydra.run.dir={log.parent / 'hydra'}")
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log, {})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"umsi-serve exited with {process.returncode} before answering:\n{server.log_tail()}")
        status, health = get_json(server.url + "/health", timeout=2.0)
        if status == 200:
            server.health = health
            return server
        time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"umsi-serve did not answer /health within {timeout:.0f} s:\n{server.log_tail()}")


def stop_server(server: ServerProcess, timeout: float = 120.0) -> int:
    """SIGTERM, then wait up to ``timeout`` seconds (SIGKILL after that); returns the exit code."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return int(server.process.returncode)


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux ``/proc``; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory (``VmHWM``) of ``pid`` and every process below it (a server and its workers), summed,
    in MB (Linux ``/proc``; 0 elsewhere)."""
    total = 0.0
    for process in {pid, *descendants(pid)}:
        try:
            status = Path(f"/proc/{process}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM")), 0.0)
    return total
