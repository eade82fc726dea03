"""Small strategies that do what public tools do, for comparison.

Each models only what the field notes record about a tool; what the notes do
not say (such as retrying a 429) is not added:

- MDEAutomator: one ``DELETE /api/indicators/{id}`` per ID, waiting out
  Retry-After on 429; a 404 is reported as skipped (not found).
- OpenCTI: BatchDelete in 500s with a fixed sleep between batches (20 s real,
  scaled); no retries.
- Sekoia: BatchDelete in 500s behind an in-process limiter of 45 calls a
  minute (scaled), which is above Defender's 30; no retries.
- generic: BatchDelete in 500s, unpaced, waiting out Retry-After on 429.

None shares a budget with another caller and none repairs a 404: a batch
that fails is reported failed as a whole. Every caller gets its own strategy
object (its own limiter), as separate tool instances or runs do.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from .callers import START_LEAD_S, Deadline, run_callers
from .defender_http import Answer, DefenderHttp
from .params import BenchParams
from .scenarios import Scenario
from .scoring import Reported

__all__ = ["BASELINES", "Baseline", "BaselineRun", "run_baseline"]

BATCH_SIZE = 500
DELETED = 204
NOT_FOUND = 404
THROTTLED = 429


class Strategy(Protocol):
    def run(
        self, ids: Sequence[int], client: DefenderHttp, deadline: Deadline
    ) -> Reported:
        """Delete `ids` until done or the deadline; report what it believes."""
        ...


class PerIdDelete:
    """MDEAutomator: one DELETE per ID, Retry-After honoured on 429."""

    def run(
        self, ids: Sequence[int], client: DefenderHttp, deadline: Deadline
    ) -> Reported:
        reported = Reported()
        for indicator_id in ids:
            answer = _retrying(partial(client.delete, indicator_id), deadline)
            if answer is None:
                break
            if answer.status == DELETED:
                reported.deleted.add(indicator_id)
            elif answer.status == NOT_FOUND:
                reported.not_found.add(indicator_id)
            else:
                reported.failed.add(indicator_id)
        return reported


class SleepPerBatch:
    """OpenCTI: batches of 500 with a fixed sleep between them."""

    def __init__(self, pause_s: float) -> None:
        self._pause_s = pause_s

    def run(
        self, ids: Sequence[int], client: DefenderHttp, deadline: Deadline
    ) -> Reported:
        reported = Reported()
        for n, batch in enumerate(_batches(ids)):
            if n and not deadline.sleep(self._pause_s):
                break
            if deadline.expired():
                break
            _settle(reported, batch, client.batch_delete(batch))
        return reported


class LimitedBatches:
    """Sekoia: batches of 500 behind an in-process sliding-window limiter."""

    def __init__(self, calls: int, window_s: float) -> None:
        self._calls = calls
        self._window_s = window_s
        self._sent: deque[float] = deque()

    def run(
        self, ids: Sequence[int], client: DefenderHttp, deadline: Deadline
    ) -> Reported:
        reported = Reported()
        for batch in _batches(ids):
            if not self._wait_for_room(deadline):
                break
            self._sent.append(time.monotonic())
            _settle(reported, batch, client.batch_delete(batch))
        return reported

    def _wait_for_room(self, deadline: Deadline) -> bool:
        while True:
            now = time.monotonic()
            while self._sent and self._sent[0] + self._window_s <= now:
                self._sent.popleft()
            if len(self._sent) < self._calls:
                return not deadline.expired()
            if not deadline.sleep(self._sent[0] + self._window_s - now):
                return False


class RetryAfterBatches:
    """Generic client: unpaced batches of 500, Retry-After honoured on 429."""

    def run(
        self, ids: Sequence[int], client: DefenderHttp, deadline: Deadline
    ) -> Reported:
        reported = Reported()
        for batch in _batches(ids):
            answer = _retrying(partial(client.batch_delete, batch), deadline)
            if answer is None:
                break
            _settle(reported, batch, answer)
        return reported


@dataclass(frozen=True)
class Baseline:
    """A named strategy; `make` builds a fresh one for each caller."""

    name: str
    make: Callable[[BenchParams], Strategy]


BASELINES = (
    Baseline("MDEAutomator: DELETE per ID", lambda p: PerIdDelete()),
    Baseline(
        "OpenCTI: 500s + sleep",
        lambda p: SleepPerBatch(p.opencti_sleep_s),
    ),
    Baseline(
        "Sekoia: 500s + 45/min limiter",
        lambda p: LimitedBatches(p.sekoia_calls, p.sekoia_window_s),
    ),
    Baseline("generic: 500s + Retry-After", lambda p: RetryAfterBatches()),
)


@dataclass(frozen=True)
class BaselineRun:
    """What a baseline reported, when it started (epoch), how long it ran."""

    reported: Reported
    started_at: float
    wall_s: float
    capped: bool


def run_baseline(
    baseline: Baseline,
    scenario: Scenario,
    params: BenchParams,
    *,
    api_url: str,
    token: str,
) -> BaselineRun:
    """Run `baseline` on `scenario`: a share per worker, or a caller per request."""
    shares, offsets = _shares(scenario)
    deadline = Deadline(params.baseline_cap_s + START_LEAD_S)
    tasks = [
        partial(_run_share, baseline.make(params), share, api_url, token, deadline)
        for share in shares
    ]
    run = run_callers(tasks, offsets)
    reported = Reported()
    for part in run.results:
        reported.merge(part)
    return BaselineRun(reported, run.started_at, run.wall_s, deadline.reached)


def _shares(scenario: Scenario) -> tuple[list[Sequence[int]], list[float]]:
    """Contiguous runs of whole batches per worker, or one share per request."""
    if len(scenario.requests) > 1:
        return list(scenario.requests), scenario.offsets()
    ids = scenario.requests[0]
    batches = math.ceil(len(ids) / BATCH_SIZE)
    size = math.ceil(batches / scenario.workers) * BATCH_SIZE
    shares: list[Sequence[int]] = [ids[n : n + size] for n in range(0, len(ids), size)]
    return shares, [0.0] * len(shares)


def _run_share(
    strategy: Strategy,
    ids: Sequence[int],
    api_url: str,
    token: str,
    deadline: Deadline,
) -> Reported:
    client = DefenderHttp(api_url, token)
    try:
        return strategy.run(ids, client, deadline)
    finally:
        client.close()


def _retrying(call: Callable[[], Answer], deadline: Deadline) -> Answer | None:
    """Call until it is not throttled; None when the deadline came first."""
    while not deadline.expired():
        answer = call()
        if answer.status != THROTTLED:
            return answer
        if not deadline.sleep(answer.retry_after_s):
            return None
    return None


def _settle(reported: Reported, batch: Sequence[int], answer: Answer) -> None:
    target = reported.deleted if answer.status == DELETED else reported.failed
    target.update(batch)


def _batches(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), BATCH_SIZE):
        yield ids[start : start + BATCH_SIZE]
