"""Sliding-window pacing of Defender calls.

Defender counts calls per app and tenant in sliding windows (30 BatchDelete
calls a minute and 1,500 an hour). A `RateBudget` hands out permission for one
call at a time so those windows are never exceeded.

A call is counted from the moment its slot is reserved until its answer
arrives: while it is in flight it counts as happening now (Defender may
count it at any moment until it answers), and once answered its recorded
time is the arrival of the answer, the latest moment Defender can have
counted it. Spacing calls from those times by a full window therefore keeps
Defender's own count, taken somewhere between our send and its answer,
within the limit whatever the latency. A call whose answer never comes back
(its process died) stops counting as in flight after `MAX_IN_FLIGHT_S`,
longer than any call can take with the client's timeouts and retries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .settings import RateLimit

__all__ = [
    "MAX_IN_FLIGHT_S",
    "BudgetExhausted",
    "InProcessBudget",
    "RateBudget",
    "Slot",
    "effective_times",
    "wait_needed",
]

Clock = Callable[[], float]

MAX_IN_FLIGHT_S = 300.0


class BudgetExhausted(Exception):
    """No call could be made before the caller's deadline."""

    def __init__(self, api: str, wait_s: float) -> None:
        super().__init__(f"no {api} call allowed for another {wait_s:.1f}s")
        self.api = api
        self.wait_s = wait_s


@dataclass
class Slot:
    """Permission for one call; `release` records when its answer arrived."""

    api: str
    key: int
    _release: Callable[[Slot, bool], None] = field(repr=False)

    def release(self, *, sent: bool = True) -> None:
        """Record the answer's arrival; `sent=False` gives the slot back."""
        self._release(self, sent)


class RateBudget(Protocol):
    """Permission to call an API within its limits, shared by all callers."""

    def acquire(self, api: str, *, timeout_s: float | None = None) -> Slot:
        """Block until a call may be made; raises BudgetExhausted on timeout."""
        ...

    def throttled(self, api: str, retry_after_s: float) -> None:
        """Record that Defender asked every caller to wait."""
        ...

    def wait_s(self, api: str) -> float:
        """Seconds until a call could be made (0 when one may go now),
        reserving nothing: a worker looks before it commits to a batch."""
        ...

    def throttled_for_s(self, api: str) -> float:
        """Seconds left of a wait Defender asked every caller for (a 429's
        Retry-After); 0 when there is none."""
        ...


def effective_times(
    answered: Iterable[float], in_flight: Iterable[float], now: float
) -> list[float]:
    """Sorted call times, with calls still in flight counted at `now`."""
    flying = [
        now if reserved > now - MAX_IN_FLIGHT_S else reserved + MAX_IN_FLIGHT_S
        for reserved in in_flight
    ]
    return sorted([*answered, *flying])


def wait_needed(
    times: Sequence[float], limits: Sequence[RateLimit], now: float
) -> float:
    """Seconds until one more call fits every window, given sorted call times."""
    wait = 0.0
    for limit in limits:
        in_window = [t for t in times if t > now - limit.window_s]
        if len(in_window) >= limit.calls:
            oldest_blocking = in_window[len(in_window) - limit.calls]
            wait = max(wait, oldest_blocking + limit.window_s - now)
    return wait


class InProcessBudget:
    """A budget kept in this process's memory, for one instance alone."""

    def __init__(
        self,
        limits: dict[str, Sequence[RateLimit]],
        *,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._limits = {api: tuple(rules) for api, rules in limits.items()}
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._times: dict[str, dict[int, float]] = {api: {} for api in limits}
        self._in_flight: dict[str, dict[int, float]] = {api: {} for api in limits}
        self._blocked_until: dict[str, float] = {}
        self._next_key = 0

    def acquire(self, api: str, *, timeout_s: float | None = None) -> Slot:
        deadline = None if timeout_s is None else self._clock() + timeout_s
        while True:
            with self._lock:
                now = self._clock()
                wait = self._wait(api, now)
                if wait <= 0:
                    return self._reserve(api, now)
            if deadline is not None and now + wait > deadline:
                raise BudgetExhausted(api, wait)
            self._sleep(wait)

    def throttled(self, api: str, retry_after_s: float) -> None:
        with self._lock:
            until = self._clock() + retry_after_s
            self._blocked_until[api] = max(self._blocked_until.get(api, 0), until)

    def wait_s(self, api: str) -> float:
        with self._lock:
            return max(0.0, self._wait(api, self._clock()))

    def throttled_for_s(self, api: str) -> float:
        with self._lock:
            return max(0.0, self._blocked_until.get(api, 0.0) - self._clock())

    def _wait(self, api: str, now: float) -> float:
        times = effective_times(
            self._times[api].values(), self._in_flight[api].values(), now
        )
        wait = wait_needed(times, self._limits[api], now)
        return max(wait, self._blocked_until.get(api, 0) - now)

    def _reserve(self, api: str, now: float) -> Slot:
        self._next_key += 1
        self._in_flight[api][self._next_key] = now
        self._forget_old(api, now)
        return Slot(api, self._next_key, self._release)

    def _release(self, slot: Slot, sent: bool) -> None:
        with self._lock:
            self._in_flight[slot.api].pop(slot.key, None)
            if sent:
                self._times[slot.api][slot.key] = self._clock()

    def _forget_old(self, api: str, now: float) -> None:
        longest = max(limit.window_s for limit in self._limits[api])
        for times, age in (
            (self._times[api], longest),
            (self._in_flight[api], longest + MAX_IN_FLIGHT_S),
        ):
            for key in [k for k, t in times.items() if t <= now - age]:
                del times[key]
