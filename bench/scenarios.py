"""The scenarios, and putting the emulated tenant into each one's start state.

- a: every seed indicator's ID (15,000, all present), one request; run with
  one worker and with `multi_workers`.
- b: the same request after every 100th indicator was removed from the
  tenant, so 1% of the IDs are already gone, spread evenly over the batches.
- c: 600 requests of 5 distinct IDs each, sent by concurrent callers at even
  intervals over one scaled minute.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from emulator import DefenderEmulator, load_seed, parse_limits
from emulator.timestamps import parse_timestamp

from .ideal import ideal_calls, ideal_seconds
from .params import BenchParams

__all__ = [
    "Scenario",
    "Tenant",
    "build_scenarios",
    "prepare_tenant",
    "tenant_rows",
]


@dataclass(frozen=True)
class Scenario:
    """What callers send, to which tenant, and how many workers serve it."""

    key: str
    label: str
    workers: int
    requests: tuple[tuple[int, ...], ...]
    gone: frozenset[int]
    arrival_s: float
    ideal_s: float
    ideal_calls: int

    @property
    def requested(self) -> frozenset[int]:
        return frozenset(i for request in self.requests for i in request)

    def offsets(self) -> list[float]:
        """When each request is sent, in seconds from the start."""
        count = len(self.requests)
        return [n * self.arrival_s / count for n in range(count)]


@dataclass(frozen=True)
class Tenant:
    """The tenant as loaded for one run: IDs and expiry times (epoch s)."""

    ids: frozenset[int]
    expiry: dict[int, float]

    def expired_by(self, moment: float) -> frozenset[int]:
        """IDs that Defender itself removed by `moment`."""
        return frozenset(i for i, at in self.expiry.items() if at <= moment)


def build_scenarios(params: BenchParams) -> list[Scenario]:
    """Scenarios a (one and several workers), b and c for `params`."""
    seed_ids = sorted(int(row["id"]) for row in load_seed())
    ids = tuple(seed_ids[: params.ids])
    gone = frozenset(ids[params.gone_every - 1 :: params.gone_every])
    rng = random.Random(params.sample_seed)
    sample = rng.sample(seed_ids, params.small_requests * params.small_request_ids)
    size = params.small_request_ids
    small = tuple(tuple(sample[n : n + size]) for n in range(0, len(sample), size))
    whole = f"{len(ids) / 1000:g}k"
    gone_share = f"{100 / params.gone_every:g}%"
    small_label = f"c {len(small)}x{size} in {params.arrival_s:g}s"
    return [
        _scenario("a", f"a {whole} all exist", 1, (ids,), params),
        _scenario("a", f"a {whole} all exist", params.multi_workers, (ids,), params),
        _scenario("b", f"b {whole}, {gone_share} gone", 1, (ids,), params, gone=gone),
        _scenario("c", small_label, 1, small, params, arrival_s=params.arrival_s),
    ]


def _scenario(
    key: str,
    label: str,
    workers: int,
    requests: tuple[tuple[int, ...], ...],
    params: BenchParams,
    *,
    gone: frozenset[int] = frozenset(),
    arrival_s: float = 0.0,
) -> Scenario:
    existing = len({i for r in requests for i in r} - gone)
    last_at = arrival_s * (len(requests) - 1) / len(requests)
    ideal = ideal_seconds(
        existing,
        parse_limits(params.batch_delete_limits),
        params.latency_s,
        last_id_at_s=last_at,
    )
    return Scenario(
        key, label, workers, requests, gone, arrival_s, ideal, ideal_calls(existing)
    )


def tenant_rows(scenario: Scenario) -> list[dict[str, Any]]:
    """The seed indicators, shifted to now, without the scenario's gone IDs.

    The nearest expiry in the seed is about an hour away, so rows built once
    serve every run of a scenario.
    """
    return [r for r in load_seed() if int(r["id"]) not in scenario.gone]


def prepare_tenant(
    emulator: DefenderEmulator, rows: list[dict[str, Any]], params: BenchParams
) -> Tenant:
    """Load `rows` as the tenant; forget earlier calls and counted limits."""
    emulator.load(rows)
    emulator.clear_calls()
    emulator.reset_limits()
    emulator.set_faults(latency_s=params.latency_s)
    return Tenant(
        ids=frozenset(int(r["id"]) for r in rows),
        expiry={int(r["id"]): _epoch(r) for r in rows if r.get("expirationTime")},
    )


def _epoch(row: dict[str, Any]) -> float:
    return parse_timestamp(str(row["expirationTime"])).timestamp()
