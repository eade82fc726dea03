"""One run of the cleanup policy, as a job like any other.

The run lists what the policy may touch, selects candidates, and records a
job whose audit holds the policy and the selection's counts. In preview mode
(the policy's, or forced by the caller) the job is a finished dry run and
nothing is deleted; otherwise the candidates are reserved from the daily cap
and deleted through the usual durable pieces.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from .cleanup import CleanupPolicy, Selection, list_for_cleanup, select
from .jobs import Job
from .service import Service

__all__ = ["CLEANUP_REQUESTER", "CleanupRun", "run_cleanup"]

logger = logging.getLogger(__name__)

CLEANUP_REQUESTER = "scheduled cleanup"
# How many selected IDs the audit record names per rule; the full list is in
# the job's pieces (a deleting run) or the preview the caller received.
_AUDIT_IDS_PER_RULE = 500


@dataclass(frozen=True)
class CleanupRun:
    """What a run selected and the job that records it."""

    job: Job
    selection: Selection
    preview: bool


def run_cleanup(
    service: Service,
    policy: CleanupPolicy,
    *,
    preview: bool = False,
    requested_by: str = CLEANUP_REQUESTER,
    now: dt.datetime | None = None,
) -> CleanupRun:
    """Select and record (and unless previewing, start deleting) one run.

    Raises DefenderError (listing), RequestError (the daily cap) and
    StorageError.
    """
    moment = now or dt.datetime.now(dt.UTC)
    rows = list_for_cleanup(service.client, policy)
    selection = select(policy, rows, now=moment)
    dry_run = preview or not policy.deletes
    ids = selection.ids()
    audit = _audit(policy, selection, dry_run)
    if ids and not dry_run:
        service.daily_cap.reserve(len(ids))
    job, _ = service.store.create(
        ids,
        requested_by=requested_by,
        reason=_reason(policy),
        audit=audit,
        finished=dry_run or not ids,
    )
    logger.info(
        "cleanup %s for tenant %s: %d candidates of %d listed (%s), job %s",
        "preview" if dry_run else "run",
        service.tenant_id,
        len(ids),
        selection.examined,
        ", ".join(f"{k}={v}" for k, v in selection.skipped.items() if v),
        job.id,
    )
    return CleanupRun(job, selection, dry_run)


def _audit(
    policy: CleanupPolicy, selection: Selection, dry_run: bool
) -> dict[str, Any]:
    by_rule: dict[str, list[str]] = {}
    for candidate in selection.candidates:
        by_rule.setdefault(candidate.rule, []).append(str(candidate.id))
    return {
        "source": "cleanup",
        "dryRun": dry_run,
        "policy": policy.to_dict(),
        "selection": {
            "examined": selection.examined,
            "candidates": len(selection.candidates),
            "kept": selection.kept,
            "skipped": selection.skipped,
            "byRule": {
                rule: ids[:_AUDIT_IDS_PER_RULE] for rule, ids in by_rule.items()
            },
        },
    }


def _reason(policy: CleanupPolicy) -> str:
    rules = ", ".join(f"{k}={v}" for k, v in policy.to_dict()["rules"].items())
    return f"cleanup policy ({rules})"
