"""A job's status document, shaped like Durable Functions' status response."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .jobs import Job, Piece
from .report import BatchOutcome, DeletionReport

__all__ = ["job_summary", "status_document"]

# Audit entries that belong in the report as well as in the job's input.
_REPORTED_AUDIT = ("values", "dryRun")


def status_document(
    job: Job,
    pieces: Sequence[Piece],
    status_url: str | None,
    *,
    throttled_for_s: float = 0.0,
) -> dict[str, Any]:
    """The job's status, progress and, once finished, its full report.

    `throttled_for_s` is what is left of a wait Defender asked every caller
    for: while an unfinished job waits it out, its last error says so.
    """
    outcome = BatchOutcome()
    for piece in pieces:
        outcome.merge(piece.outcome)
    report = DeletionReport(requested=job.requested, outcome=outcome)
    report.extra.update({k: job.audit[k] for k in _REPORTED_AUDIT if k in job.audit})
    counts = report.to_dict()["counts"]
    errors = [p.last_error for p in pieces if p.remaining and p.last_error]
    if throttled_for_s > 0 and not job.finished:
        errors.insert(
            0,
            "Defender is throttling the tenant (429): no call for another "
            f"{math.ceil(throttled_for_s)} s",
        )
    document = job_summary(job)
    document["customStatus"] = {
        **counts,
        "pending": sum(len(p.remaining) for p in pieces),
        "lastError": errors[0] if errors else None,
    }
    document["output"] = report.to_dict() if job.finished else None
    if status_url:
        document["statusQueryGetUri"] = status_url
    return document


def job_summary(job: Job) -> dict[str, Any]:
    """The job without its report: who asked, what, when, and its status."""
    return {
        "id": job.id,
        "runtimeStatus": job.status.value,
        "createdTime": job.created,
        "lastUpdatedTime": job.updated,
        "input": {
            "requested": job.requested,
            "requestedBy": job.requested_by,
            "reason": job.reason,
            "idempotencyKey": job.idempotency_key,
            **job.audit,
        },
    }
