"""The app's processes for the length of a run: its functions host
(``python -m localdev.host``) and its workers (``python -m localdev.worker``).

The host runs in a process of its own, as it does in Azure: sharing the
bench's process (and its interpreter lock) with hundreds of caller threads
and the Defender emulator would make the bench measure its own contention.
Workers run without ``--idle-exit``: they are started and ready before the
first request, and an idle-exit worker would quit while a piece waits out a
retry delay. Every process inherits the stack's app settings from the
environment and logs to its own file.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from localdev.stack import REPO_ROOT

__all__ = ["HostProcess", "host_process", "worker_processes"]

READY_LINE = "WORKER_READY"
STOP_WAIT_S = 10.0
_BASE_URL_LINE = "FUNCTION_BASE_URL="
_KEY_LINE = "FUNCTION_KEY="


@dataclass
class _Process:
    process: subprocess.Popen[str]
    log: IO[str]


@dataclass(frozen=True)
class HostProcess:
    """Where the host process serves the functions, and its key."""

    base_url: str
    function_key: str


@contextmanager
def host_process(log_dir: Path) -> Iterator[HostProcess]:
    """Run the functions host on a free port in the block.

    Raises RuntimeError when it does not report its address.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(24)
    host = _spawn(["localdev.host", "--port", "0", "--key", key], log_dir / "host.log")
    try:
        yield HostProcess(_base_url(host), key)
    finally:
        _stop([host])


@contextmanager
def worker_processes(count: int, seconds: float, log_dir: Path) -> Iterator[None]:
    """Run `count` ready workers (each for at most `seconds`) in the block.

    Raises RuntimeError when a worker does not report that it is ready.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    workers = [_start(n, seconds, log_dir) for n in range(count)]
    try:
        for worker in workers:
            assert worker.process.stdout is not None
            if worker.process.stdout.readline().strip() != READY_LINE:
                raise RuntimeError(f"a worker did not start; see {worker.log.name}")
        yield
    finally:
        _stop(workers)


def _base_url(host: _Process) -> str:
    assert host.process.stdout is not None
    for line in host.process.stdout:
        if line.startswith(_BASE_URL_LINE):
            return line.strip()[len(_BASE_URL_LINE) :]
    raise RuntimeError(f"the functions host did not start; see {host.log.name}")


def _start(n: int, seconds: float, log_dir: Path) -> _Process:
    return _spawn(
        ["localdev.worker", "--seconds", f"{seconds:g}"], log_dir / f"worker-{n}.log"
    )


def _spawn(module_args: list[str], log_path: Path) -> _Process:
    """Run `python -m <module_args>` with the stack's environment, its
    standard output piped to us and its log in `log_path`."""
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", *module_args],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    return _Process(process, log)


def _stop(workers: list[_Process]) -> None:
    for worker in workers:
        worker.process.terminate()
    for worker in workers:
        try:
            worker.process.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
        if worker.process.stdout is not None:
            worker.process.stdout.close()
        worker.log.close()
