"""The benchmark's parameters: scaled limits, latency, sizes and caps.

Time is scaled by `TIME_SCALE` (one real minute becomes 6 s) for every time
constant that belongs to the limits or to a tool's pacing: the limit windows,
OpenCTI's sleep, Sekoia's limiter, the app's batch linger and the baseline
cap. Call latency is not scaled: it is what a call to Defender takes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["FULL", "QUICK", "TIME_SCALE", "BenchParams"]

TIME_SCALE = 6 / 60
REAL_LINGER_S = 1.0
REAL_MAX_LINGER_S = 10.0
REAL_OPENCTI_SLEEP_S = 20.0
REAL_SEKOIA_CALLS_PER_MINUTE = 45
REAL_MINUTE_S = 60.0
# A tool still busy after 15 real minutes is stopped and reported as capped.
REAL_CAP_S = 900.0


@dataclass(frozen=True)
class BenchParams:
    """One benchmark configuration; `FULL` and `QUICK` are the two in use.

    Times are in seconds. `ids` is the size of scenarios a and b, of which b
    removes every `gone_every`-th from the tenant; scenario c sends
    `small_requests` requests of `small_request_ids` IDs over `arrival_s`.
    """

    mode: str
    batch_delete_limits: str
    list_limits: str
    latency_s: float
    linger_s: float
    max_linger_s: float
    baseline_cap_s: float
    ours_cap_s: float
    ids: int
    gone_every: int
    small_requests: int
    small_request_ids: int
    arrival_s: float
    opencti_sleep_s: float
    sekoia_calls: int
    sekoia_window_s: float
    multi_workers: int = 4
    sample_seed: int = 2026

    def to_json(self) -> dict[str, Any]:
        """The parameters as recorded in the results."""
        return {**asdict(self), "time_scale": TIME_SCALE}


FULL = BenchParams(
    mode="full",
    batch_delete_limits="30/6s,1500/360s",
    list_limits="100/6s,1500/360s",
    latency_s=0.3,
    linger_s=REAL_LINGER_S * TIME_SCALE,
    max_linger_s=REAL_MAX_LINGER_S * TIME_SCALE,
    baseline_cap_s=REAL_CAP_S * TIME_SCALE,
    ours_cap_s=180.0,
    ids=15_000,
    gone_every=100,
    small_requests=600,
    small_request_ids=5,
    arrival_s=REAL_MINUTE_S * TIME_SCALE,
    opencti_sleep_s=REAL_OPENCTI_SLEEP_S * TIME_SCALE,
    sekoia_calls=REAL_SEKOIA_CALLS_PER_MINUTE,
    sekoia_window_s=REAL_MINUTE_S * TIME_SCALE,
)

# A smoke run: the same scenarios with fewer IDs, fewer small requests
# arriving in half the time, and a short cap.
QUICK = replace(
    FULL,
    mode="quick",
    baseline_cap_s=4.0,
    arrival_s=FULL.arrival_s / 2,
    ours_cap_s=60.0,
    ids=2_000,
    small_requests=40,
)
