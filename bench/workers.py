"""Worker processes (``python -m localdev.worker``) for the length of a run.

Workers run without ``--idle-exit``: they are started and ready before the
first request, and an idle-exit worker would quit while a piece waits out a
retry delay. Each inherits the stack's app settings from the environment and
logs to its own file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from localdev.stack import REPO_ROOT

__all__ = ["worker_processes"]

READY_LINE = "WORKER_READY"
STOP_WAIT_S = 10.0


@dataclass
class _Worker:
    process: subprocess.Popen[str]
    log: IO[str]


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


def _start(n: int, seconds: float, log_dir: Path) -> _Worker:
    log = (log_dir / f"worker-{n}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "localdev.worker", "--seconds", f"{seconds:g}"],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    return _Worker(process, log)


def _stop(workers: list[_Worker]) -> None:
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
