"""Scoring one run against the emulator: calls, throttling, deletions, errors.

The truth is the emulator's tenant before and after the run and its call log.
An ID counts as confirmed deleted only when a BatchDelete answered 204 with it
in ``indicatorIds``, or a ``DELETE /api/indicators/{id}`` answered 204.

`wrong` counts distinct IDs with at least one of these faults:

- requested, present at the start, and still present at the end;
- gone at the end although not requested and not expired;
- reported deleted by the strategy, but no 204 confirmed it;
- reported not found by the strategy, but a 204 deleted it.

`deleted` counts the indicators that left the tenant during the run other
than by expiry, whoever asked for them.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .scenarios import Tenant

__all__ = ["Reported", "Score", "confirmed_deletions", "score_run"]

API_BATCH_DELETE = "batch_delete"
API_DELETE = "delete"
API_LIST = "list"
COUNTED_APIS = (API_BATCH_DELETE, API_DELETE, API_LIST)
DELETED = 204
THROTTLED = 429


@dataclass
class Reported:
    """What a strategy told its caller about each ID."""

    deleted: set[int] = field(default_factory=set)
    not_found: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)

    def merge(self, other: Reported) -> None:
        self.deleted |= other.deleted
        self.not_found |= other.not_found
        self.failed |= other.failed

    def counts(self) -> dict[str, int]:
        return {
            "deleted": len(self.deleted),
            "notFound": len(self.not_found),
            "failed": len(self.failed),
        }


@dataclass(frozen=True)
class Score:
    """The numbers of one run that the table and the JSON show."""

    api_calls: int
    calls_by_api: dict[str, int]
    throttled: int
    deleted: int
    wrong: int
    wrong_detail: dict[str, int]
    batch_sizes: dict[str, float]


def score_run(
    tenant: Tenant,
    requested: Iterable[int],
    after: Iterable[int],
    calls: Sequence[Mapping[str, Any]],
    reported: Reported,
    *,
    ended_at: float,
) -> Score:
    """Score a run that ended at epoch `ended_at`; raises ValueError when the
    call log does not say which IDs a BatchDelete carried."""
    wanted = set(requested) & tenant.ids
    remaining = set(after)
    expired = tenant.expired_by(ended_at)
    removed = tenant.ids - remaining - expired
    confirmed = confirmed_deletions(calls)

    faults = {
        "remaining": wanted & remaining,
        "unrequested": removed - wanted,
        "unconfirmed": reported.deleted - confirmed,
        "notFoundButDeleted": reported.not_found & confirmed,
    }
    wrong = set().union(*faults.values())
    by_api = {api: sum(1 for c in calls if c.get("api") == api) for api in COUNTED_APIS}
    return Score(
        api_calls=sum(by_api.values()),
        calls_by_api=by_api,
        throttled=sum(1 for c in calls if c.get("status") == THROTTLED),
        deleted=len(removed),
        wrong=len(wrong),
        wrong_detail={name: len(ids) for name, ids in faults.items()},
        batch_sizes=_batch_sizes(calls),
    )


def confirmed_deletions(calls: Iterable[Mapping[str, Any]]) -> set[int]:
    """IDs that a 204 answer of BatchDelete or single DELETE confirmed."""
    confirmed: set[int] = set()
    for call in calls:
        if call.get("status") != DELETED:
            continue
        if call.get("api") == API_BATCH_DELETE:
            carried = call.get("indicatorIds")
            if carried is None:
                raise ValueError("the emulator's call log lacks indicatorIds")
            confirmed.update(int(i) for i in carried)
        elif call.get("api") == API_DELETE:
            confirmed.add(int(str(call["path"]).rstrip("/").rsplit("/", 1)[-1]))
    return confirmed


def _batch_sizes(calls: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Smallest, median and largest BatchDelete call that Defender admitted."""
    sizes = sorted(
        len(call.get("indicatorIds") or ())
        for call in calls
        if call.get("api") == API_BATCH_DELETE and call.get("status") != THROTTLED
    )
    if not sizes:
        return {}
    return {"min": sizes[0], "median": statistics.median(sizes), "max": sizes[-1]}
