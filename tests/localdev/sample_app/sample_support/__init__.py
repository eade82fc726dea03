"""State the sample functions share with the tests that drive them.

Imported as `sample_support`, from the app root the host puts on `sys.path`,
the way a real app imports its `shared` package.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["Recorder", "recorder"]


class Recorder:
    """What the sample functions were called with, and how timers behave."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.timer_started = threading.Event()
        self.timer_gate = threading.Event()
        self.timer_fails = False
        self.reset()

    def reset(self) -> None:
        self.calls.clear()
        self.timer_started.clear()
        self.timer_gate.set()
        self.timer_fails = False

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


recorder = Recorder()
