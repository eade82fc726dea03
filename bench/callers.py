"""Concurrent callers on a schedule, and the wall-clock cap they share."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["CallerRun", "Deadline", "run_callers"]

T = TypeVar("T")

# Time for the pool to start its threads before the first caller is due.
START_LEAD_S = 0.2


class Deadline:
    """A wall-clock cap; `reached` stays True once anything ran into it."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds
        self._hit = threading.Event()

    @property
    def reached(self) -> bool:
        return self._hit.is_set()

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def expired(self) -> bool:
        if self.remaining() <= 0:
            self._hit.set()
        return self.reached

    def sleep(self, seconds: float) -> bool:
        """Sleep `seconds`, or until the cap; False when the cap cut it short."""
        left = self.remaining()
        if seconds >= left:
            time.sleep(max(0.0, left))
            self._hit.set()
            return False
        time.sleep(max(0.0, seconds))
        return True


@dataclass(frozen=True)
class CallerRun(Generic[T]):
    """What the callers returned, when they started (epoch) and how long
    the last one took to finish."""

    results: list[T]
    started_at: float
    wall_s: float


def run_callers(
    tasks: Sequence[Callable[[], T]], offsets: Sequence[float]
) -> CallerRun[T]:
    """Run each task in its own thread, starting `offsets[n]` s after the start.

    A task that raises makes this raise once every task has ended.
    """
    start = time.monotonic() + START_LEAD_S
    started_at = time.time() + START_LEAD_S

    def scheduled(task: Callable[[], T], offset: float) -> T:
        time.sleep(max(0.0, start + offset - time.monotonic()))
        return task()

    with ThreadPoolExecutor(max(1, len(tasks)), "caller") as pool:
        futures = [
            pool.submit(scheduled, task, offset)
            for task, offset in zip(tasks, offsets, strict=True)
        ]
        results = [future.result() for future in futures]
    return CallerRun(results, started_at, time.monotonic() - start)
