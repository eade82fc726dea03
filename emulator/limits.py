"""Sliding-window rate limits, written as ``30/60s,1500/3600s``.

Each comma-separated part allows N calls in any window of S seconds. A call
is admitted only when every window has room, and only admitted calls are
counted, so a throttled caller does not push its own wait further out.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

__all__ = ["RateLimit", "SlidingWindowLimiter", "parse_limits", "retry_after_header"]

_PART = re.compile(r"\s*(?P<calls>\d+)\s*/\s*(?P<window>\d+(?:\.\d+)?)\s*s\s*")
_RETRY_AFTER_ROUNDING = 3
_MIN_RETRY_AFTER_S = 1


@dataclass(frozen=True)
class RateLimit:
    """At most `max_calls` calls in any `window_s` seconds."""

    max_calls: int
    window_s: float


def parse_limits(text: str) -> tuple[RateLimit, ...]:
    """Parse ``N/Ss`` parts separated by commas; empty text means no limit.

    Raises ValueError naming the part that does not parse.
    """
    if not text.strip():
        return ()

    limits = []
    for part in text.split(","):
        match = _PART.fullmatch(part)
        if match is None:
            raise ValueError(
                f"rate limit part {part.strip()!r} of {text!r} is not N/Ss (30/60s)"
            )
        limit = RateLimit(int(match["calls"]), float(match["window"]))
        if limit.max_calls < 1 or limit.window_s <= 0:
            raise ValueError(f"rate limit part {part.strip()!r} must be positive")
        limits.append(limit)
    return tuple(limits)


def retry_after_header(wait_s: float) -> str:
    """Whole seconds for ``Retry-After``: the wait rounded up, at least one."""
    return str(max(_MIN_RETRY_AFTER_S, math.ceil(round(wait_s, _RETRY_AFTER_ROUNDING))))


class SlidingWindowLimiter:
    """Call history per key against a fixed set of limits.

    Not thread-safe on its own: the emulator calls it under its lock.
    """

    def __init__(self, limits: Sequence[RateLimit]) -> None:
        self.limits = tuple(limits)
        self._history: dict[Hashable, list[deque[float]]] = {}

    def try_acquire(self, key: Hashable, now: float) -> float | None:
        """Count a call for `key` and return None, or return the seconds to wait.

        A refused call is not counted.
        """
        windows = self._history.setdefault(key, [deque() for _ in self.limits])
        waits = []
        for limit, calls in zip(self.limits, windows, strict=True):
            while calls and calls[0] + limit.window_s <= now:
                calls.popleft()
            if len(calls) >= limit.max_calls:
                waits.append(calls[0] + limit.window_s - now)
        if waits:
            return max(waits)

        for calls in windows:
            calls.append(now)
        return None

    def reset(self) -> None:
        """Forget every call counted so far."""
        self._history.clear()
