"""The least time Defender's limits allow for a scenario: `ideal_s`.

A scenario needs ``ceil(IDs / 500)`` BatchDelete calls, where IDs are the
requested indicators that exist. Defender counts each call in sliding windows
when it arrives; under a limit of `c` calls per `W` seconds the k-th call can
therefore arrive no earlier than the (k-c)-th call plus `W`, for every limit
at once. The first call arrives at 0, so the last arrives at the smallest
time these rules allow, and its answer comes one call's latency later.

When requests trickle in (scenario c), the last call cannot be sent before the
last ID has arrived, so the last call's arrival is also no earlier than that.
Nothing else (storage, listing, process start) is allowed for: `ideal_s` is a
lower bound that no client can beat, not an estimate of a good one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from emulator import RateLimit

__all__ = ["MAX_IDS_PER_CALL", "earliest_arrivals", "ideal_calls", "ideal_seconds"]

MAX_IDS_PER_CALL = 500


def ideal_calls(ids: int) -> int:
    """How many BatchDelete calls `ids` existing indicators need at least."""
    return math.ceil(ids / MAX_IDS_PER_CALL)


def earliest_arrivals(calls: int, limits: Sequence[RateLimit]) -> list[float]:
    """The earliest arrival of each of `calls` calls, the first at 0."""
    arrivals: list[float] = []
    for k in range(calls):
        earliest = 0.0
        for limit in limits:
            if k >= limit.max_calls:
                earliest = max(earliest, arrivals[k - limit.max_calls] + limit.window_s)
        arrivals.append(earliest)
    return arrivals


def ideal_seconds(
    ids: int,
    limits: Sequence[RateLimit],
    latency_s: float,
    *,
    last_id_at_s: float = 0.0,
) -> float:
    """The least wall time for deleting `ids` existing indicators.

    `last_id_at_s` is when the last ID reaches the client, counted from the
    start of the run.
    """
    arrivals = earliest_arrivals(ideal_calls(ids), limits)
    last_arrival = max(arrivals[-1] if arrivals else 0.0, last_id_at_s)
    return last_arrival + latency_s
