"""What one scenario loads, sends, and does to the world while the app works."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.scoring import API_BATCH_DELETE, API_LIST

from .tenants import Row

if TYPE_CHECKING:
    from .lab import Lab

__all__ = [
    "AFTER_LISTING",
    "Action",
    "Builder",
    "Moment",
    "Plan",
    "Spec",
    "after_batches",
]

# How long anything waits for a job to get under way.
START_TIMEOUT_S = 60.0

# Runs beside the callers; `stop` is set once every job finished or the cap
# passed. Returns a short note on what it did, for the results.
Action = Callable[["Lab", threading.Event], str]


@dataclass(frozen=True)
class Moment:
    """A point in a job: once the emulator logged `count` calls of `api`."""

    api: str
    count: int

    def wait(self, lab: Lab, stop: threading.Event) -> bool:
        """Wait for the moment; False when `stop` was set or time ran out."""
        return lab.wait_for_calls(self.api, self.count, stop, START_TIMEOUT_S)

    def __str__(self) -> str:
        return f"after {self.count} {self.api} call(s)"


# The app has read its secret and listed the tenant; no BatchDelete yet.
AFTER_LISTING = Moment(API_LIST, 1)


def after_batches(count: int) -> Moment:
    return Moment(API_BATCH_DELETE, count)


@dataclass(frozen=True)
class Plan:
    """One scenario's tenant, requests, faults and mid-job action.

    With one request its POST answers 202 at once and the worker processes
    do the work (the caller watches the job list, as `bench.ours` does); with
    several, each POST works up to 20 s and its caller then polls the status
    URL, so the HTTP calls do the work alongside any workers. With an
    `idempotency_key`, the one request is sent `copies` times at once under
    that key. With a `follow_up`, the requests after the first are sent
    only at that moment of the first one's job.
    """

    rows: list[Row]
    requests: tuple[tuple[int, ...], ...]
    workers: int = 1
    faults: Mapping[str, Any] = field(default_factory=dict)
    emulator: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, str] = field(default_factory=dict)
    token_lifetime_s: int | None = None
    action: Action | None = None
    idempotency_key: str | None = None
    copies: int = 1
    follow_up: Moment | None = None

    @property
    def requested(self) -> frozenset[int]:
        return frozenset(i for request in self.requests for i in request)


# Makes a plan from the suite's base tenant: its rows, and the IDs a plain
# request names.
Builder = Callable[[list[Row], tuple[int, ...]], Plan]


@dataclass(frozen=True)
class Spec:
    """A named scenario; `build` makes its plan just before it runs."""

    name: str
    description: str
    build: Builder
