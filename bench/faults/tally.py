"""Scoring one scenario: what was requested, gone, reported, lost, misreported.

The truth is the emulator: its tenant before and after, and its call log.
`bench.scoring.score_run` gives the benchmark's `wrong` and the call counts;
this module adds the suite's own columns:

- deleted: requested IDs present at the start and gone at the end (by any
  means, expiry included);
- reported: distinct IDs in the app's reports (deleted, notFound, forbidden,
  failed);
- lost: requested IDs still present that no report calls failed or
  forbidden, and IDs reported deleted that are still present;
- misreported: IDs reported deleted without a 204 BatchDelete carrying them,
  reported notFound while still present, reported more than once, reported
  though not requested, or requested and missing from every report;
- extra calls: calls to Defender beyond ceil(existing IDs / 500) BatchDelete
  calls and the List calls the clean baseline run needed;
- throttled: calls the emulator answered 429.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.scenarios import Tenant
from bench.scoring import API_LIST, THROTTLED, Reported, confirmed_deletions, score_run

from .plan import Plan

__all__ = ["Reports", "Tally", "tally"]

MAX_IDS_PER_BATCH = 500
_FAILURE_KINDS = ("forbidden", "failed")


@dataclass
class Reports:
    """Every ID the app reported, by kind, counting repeats."""

    deleted: Counter[int] = field(default_factory=Counter)
    not_found: Counter[int] = field(default_factory=Counter)
    forbidden: Counter[int] = field(default_factory=Counter)
    failed: Counter[int] = field(default_factory=Counter)

    @classmethod
    def of(cls, documents: Iterable[Mapping[str, Any]]) -> Reports:
        reports = cls()
        for document in documents:
            output = document.get("output") or {}
            reports.deleted.update(int(i) for i in output.get("deleted", []))
            reports.not_found.update(int(i) for i in output.get("notFound", []))
            for kind in _FAILURE_KINDS:
                ids = (int(f["id"]) for f in output.get(kind, []))
                getattr(reports, kind).update(ids)
        return reports

    def everything(self) -> Counter[int]:
        return self.deleted + self.not_found + self.forbidden + self.failed

    def as_reported(self) -> Reported:
        """The benchmark's view: forbidden counts as failed."""
        return Reported(
            deleted=set(self.deleted),
            not_found=set(self.not_found),
            failed=set(self.forbidden) | set(self.failed),
        )


@dataclass(frozen=True)
class Tally:
    """One row's numbers, with the IDs behind the non-zero faults."""

    requested: int
    deleted: int
    reported: int
    lost: int
    misreported: int
    extra_calls: int
    throttled: int
    wrong: int
    detail: dict[str, Any]


def clean_calls(existing: int, clean_lists: int) -> int:
    """Calls a clean run needs: full batches plus the baseline's listings."""
    return math.ceil(existing / MAX_IDS_PER_BATCH) + clean_lists


def tally(
    plan: Plan,
    tenant: Tenant,
    after: set[int],
    calls: Sequence[Mapping[str, Any]],
    documents: Sequence[Mapping[str, Any]],
    *,
    clean_lists: int | None,
    ended_at: float,
) -> Tally:
    """Score one run against the emulator; see the module docstring.

    `clean_lists` is the List calls a clean run needs; None for the clean
    run itself, which needs the ones it made.
    """
    requested = set(plan.requested)
    reports = Reports.of(documents)
    confirmed = confirmed_deletions(calls)
    lost = _lost(requested, after, reports)
    misreported = _misreported(requested, after, reports, confirmed)
    score = score_run(
        tenant, requested, after, calls, reports.as_reported(), ended_at=ended_at
    )
    existing = requested & tenant.ids
    if clean_lists is None:
        clean_lists = score.calls_by_api[API_LIST]
    lists = clean_lists if any(len(r) > MAX_IDS_PER_BATCH for r in plan.requests) else 0
    detail = {
        "lost_ids": _sample(lost),
        "misreported_ids": {name: _sample(ids) for name, ids in misreported.items()},
        "report_counts": {
            "deleted": len(reports.deleted),
            "notFound": len(reports.not_found),
            "forbidden": len(reports.forbidden),
            "failed": len(reports.failed),
        },
        "calls_by_api": score.calls_by_api,
        "wrong_detail": score.wrong_detail,
        "clean_calls": clean_calls(len(existing), lists),
        "list_calls": score.calls_by_api[API_LIST],
        "statuses": _statuses(calls),
    }
    return Tally(
        requested=len(requested),
        deleted=len(existing - after),
        reported=len(reports.everything()),
        lost=len(lost),
        misreported=len(set().union(*misreported.values())),
        extra_calls=score.api_calls - clean_calls(len(existing), lists),
        throttled=sum(1 for c in calls if c.get("status") == THROTTLED),
        wrong=score.wrong,
        detail=detail,
    )


def _lost(requested: set[int], after: set[int], reports: Reports) -> set[int]:
    accounted = set(reports.forbidden) | set(reports.failed)
    still_there = (requested & after) - accounted
    return still_there | (set(reports.deleted) & after)


def _misreported(
    requested: set[int], after: set[int], reports: Reports, confirmed: set[int]
) -> dict[str, set[int]]:
    everything = reports.everything()
    return {
        "deletedWithout204": set(reports.deleted) - confirmed,
        "notFoundButPresent": set(reports.not_found) & after,
        "reportedTwice": {i for i, n in everything.items() if n > 1},
        "notRequested": set(everything) - requested,
        "missing": requested - set(everything),
    }


def _statuses(calls: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How Defender answered, by API and status ("None" for a dropped call)."""
    counts = Counter(f"{c.get('api')} {c.get('status')}" for c in calls)
    return dict(sorted(counts.items()))


def _sample(ids: set[int], limit: int = 20) -> dict[str, Any]:
    return {"count": len(ids), "ids": sorted(ids)[:limit]}
