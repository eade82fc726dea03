"""Batch outcomes in the compact form stored with each piece of a job.

Failures are grouped by their cause, so 500 IDs that failed with the same
Defender answer take one entry instead of 500 (a Table Storage property holds
at most 64 KiB).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .report import BatchOutcome, Failure

__all__ = ["combine", "decode_outcome", "encode_outcome", "restrict"]


def encode_outcome(outcome: BatchOutcome) -> str:
    document = {
        "deleted": sorted(outcome.deleted),
        "notFound": sorted(outcome.not_found),
        "forbidden": _grouped(outcome.forbidden),
        "failed": _grouped(outcome.failed),
    }
    return json.dumps(document, separators=(",", ":"))


def decode_outcome(text: str | None) -> BatchOutcome:
    if not text:
        return BatchOutcome()
    document = json.loads(text)
    return BatchOutcome(
        deleted=[int(i) for i in document.get("deleted", [])],
        not_found=[int(i) for i in document.get("notFound", [])],
        forbidden=_ungrouped(document.get("forbidden", [])),
        failed=_ungrouped(document.get("failed", [])),
    )


def restrict(outcome: BatchOutcome, ids: Iterable[int]) -> BatchOutcome:
    """The part of `outcome` that concerns `ids`."""
    wanted = set(ids)
    return BatchOutcome(
        deleted=[i for i in outcome.deleted if i in wanted],
        not_found=[i for i in outcome.not_found if i in wanted],
        forbidden=[f for f in outcome.forbidden if f.id in wanted],
        failed=[f for f in outcome.failed if f.id in wanted],
    )


def combine(earlier: BatchOutcome, later: BatchOutcome) -> BatchOutcome:
    """Both outcomes, each ID once: a 204-confirmed deletion wins, otherwise
    the later answer replaces the earlier one.

    Two answers for one ID arise when a worker whose lease ran out learns of
    a 204 after another worker already resent the ID and was told 404.
    """
    deleted = set(earlier.deleted) | set(later.deleted)
    newer = set(later.settled_ids())

    def kept(ids: Iterable[int]) -> list[int]:
        return [i for i in ids if i not in deleted and i not in newer]

    return BatchOutcome(
        deleted=sorted(deleted),
        not_found=kept(earlier.not_found)
        + [i for i in later.not_found if i not in deleted],
        forbidden=[f for f in earlier.forbidden if f.id not in deleted | newer]
        + [f for f in later.forbidden if f.id not in deleted],
        failed=[f for f in earlier.failed if f.id not in deleted | newer]
        + [f for f in later.failed if f.id not in deleted],
    )


def _grouped(failures: Iterable[Failure]) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], list[int]] = {}
    for f in failures:
        groups.setdefault((f.status, f.code, f.target, f.message), []).append(f.id)
    return [
        {"status": s, "code": c, "target": t, "message": m, "ids": sorted(ids)}
        for (s, c, t, m), ids in groups.items()
    ]


def _ungrouped(groups: Iterable[dict[str, Any]]) -> list[Failure]:
    return [
        Failure(int(i), g.get("status"), g.get("code"), g.get("target"), g["message"])
        for g in groups
        for i in g["ids"]
    ]
