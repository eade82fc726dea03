"""Worker processes (``python -m localdev.worker``) that a scenario can kill.

Unlike `bench.workers`, each process is reachable on its own: a scenario
SIGKILLs one mid-job and starts another, or starts fresh ones whose service
has no cached secret. A worker that dies on its own (an exception escaping
its drain) is counted and replaced, as the Functions host would run the
timer again on its next tick. Every process runs in its own session, so a
Ctrl-C in the terminal reaches only the suite, which then stops them all.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from localdev.stack import REPO_ROOT

__all__ = ["WorkerPool", "WorkerStartError"]

READY_LINE = "WORKER_READY"
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 5.0
WATCH_INTERVAL_S = 0.5


class WorkerStartError(RuntimeError):
    """A worker process exited or stayed silent instead of getting ready."""


@dataclass
class _Worker:
    process: subprocess.Popen[str]
    log: IO[str]
    log_path: Path
    env: Mapping[str, str]


class WorkerPool:
    """Starts, kills, replaces and finally stops the worker processes."""

    def __init__(self, log_dir: Path, seconds: float) -> None:
        self._log_dir = log_dir
        self._seconds = seconds
        self._lock = threading.Lock()
        self._live: list[_Worker] = []
        self._started = 0
        self._crashed = 0
        self._closed = threading.Event()
        self._watcher: threading.Thread | None = None
        # Bumped by stop_all, so that a replacement decided on before it is
        # not started after it.
        self._generation = 0

    @property
    def started(self) -> int:
        """How many processes this pool has started so far."""
        return self._started

    @property
    def crashed(self) -> int:
        """How many exited with an error on their own (and were replaced)."""
        return self._crashed

    def set_log_dir(self, log_dir: Path) -> None:
        self._log_dir = log_dir

    def start(self, count: int = 1, env: Mapping[str, str] | None = None) -> None:
        """Start `count` workers and wait until each is ready.

        They inherit the process environment plus `env`. Raises
        WorkerStartError.
        """
        started = [self._spawn(env or {}) for _ in range(count)]
        for worker in started:
            assert worker is not None
            _await_ready(worker)
        self._watch()

    def kill_one(self) -> int:
        """SIGKILL the oldest live worker; returns its process ID."""
        with self._lock:
            worker = self._live.pop(0)
        worker.process.kill()
        worker.process.wait()
        _close(worker)
        return worker.process.pid

    def stop_all(self) -> None:
        """Terminate every live worker, killing those that linger."""
        with self._lock:
            workers, self._live = self._live, []
            self._generation += 1
        for worker in workers:
            _signal(worker, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for worker in workers:
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(worker, signal.SIGKILL)
                worker.process.wait()
            _close(worker)

    def close(self) -> None:
        """Stop every worker and the watcher; the pool is done."""
        self._closed.set()
        self.stop_all()
        if self._watcher is not None:
            self._watcher.join()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _watch(self) -> None:
        if self._watcher is None:
            self._watcher = threading.Thread(
                target=self._replace_the_dead, name="worker-watch", daemon=True
            )
            self._watcher.start()

    def _replace_the_dead(self) -> None:
        while not self._closed.wait(WATCH_INTERVAL_S):
            with self._lock:
                dead = [w for w in self._live if w.process.poll() is not None]
                self._live = [w for w in self._live if w not in dead]
                generation = self._generation
            for worker in dead:
                _close(worker)
                if worker.process.returncode != 0:
                    self._crashed += 1
                self._spawn(worker.env, generation)

    def _spawn(
        self, env: Mapping[str, str], generation: int | None = None
    ) -> _Worker | None:
        """Start one worker; None when `generation` has passed meanwhile."""
        self._log_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if generation is not None and generation != self._generation:
                return None
            self._started += 1
            log_path = self._log_dir / f"worker-{self._started}.log"
            log = log_path.open("w")
            process = subprocess.Popen(
                _command(self._seconds),
                cwd=REPO_ROOT,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
            )
            worker = _Worker(process, log, log_path, dict(env))
            self._live.append(worker)
        return worker


def _command(seconds: float) -> list[str]:
    return [sys.executable, "-m", "localdev.worker", "--seconds", f"{seconds:g}"]


def _await_ready(worker: _Worker) -> None:
    # readline() blocks; a timer kills a worker that never answers.
    timer = threading.Timer(READY_TIMEOUT_S, worker.process.kill)
    timer.start()
    try:
        assert worker.process.stdout is not None
        line = worker.process.stdout.readline().strip()
    finally:
        timer.cancel()
    if line != READY_LINE:
        raise WorkerStartError(f"a worker did not start; see {worker.log_path}")


def _signal(worker: _Worker, signum: signal.Signals) -> None:
    if worker.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.process.pid, signum)


def _close(worker: _Worker) -> None:
    if worker.process.stdout is not None:
        worker.process.stdout.close()
    worker.log.close()
