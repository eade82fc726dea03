"""Turning a validated request into a job, or a preview.

Shared by the HTTP function and the command line: values are resolved to
IDs, the caps are checked, and the job is stored with its audit record. A
dry run resolves and previews the same way, deletes nothing, and is recorded
as a finished job so the audit trail shows it too.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .caps import check_request_cap
from .errors import RequestError
from .http_api import DeleteRequest
from .jobs import Job
from .service import Service
from .values import Resolution, resolve_values

__all__ = ["Submission", "request_hash", "submit"]

logger = logging.getLogger(__name__)

_PREVIEW_FIELDS = (
    "id",
    "indicatorValue",
    "indicatorType",
    "action",
    "application",
    "createdBy",
    "expirationTime",
)


@dataclass(frozen=True)
class Submission:
    """The stored job; `preview` is set for dry runs, `created` for new jobs."""

    job: Job
    created: bool
    preview: dict[str, Any] | None = None


def submit(
    service: Service,
    request: DeleteRequest,
    *,
    idempotency_key: str | None = None,
    caller: Mapping[str, str] | None = None,
    source: str = "http",
) -> Submission:
    """Store `request` as a job (or preview it); raises RequestError,
    StorageError and, while resolving values, DefenderError."""
    fingerprint = request_hash(request)
    if idempotency_key:
        existing = service.store.find_by_key(idempotency_key)
        if existing is not None:
            logger.info("job %s found by its idempotency key", existing.id)
            return Submission(_same_request(existing, fingerprint), created=False)

    resolution = _resolve(service, request)
    ids = list(request.ids)
    if resolution is not None:
        ids = list(dict.fromkeys([*ids, *resolution.ids()]))
    check_request_cap(len(ids), service.settings.max_ids_per_request)
    audit = _audit(request, resolution, caller, source)
    if request.dry_run:
        return _dry_run(
            service, request, ids, resolution, audit, idempotency_key, fingerprint
        )

    if ids:
        service.daily_cap.reserve(len(ids))
    job, created = service.store.create(
        ids,
        requested_by=request.requested_by,
        reason=request.reason,
        idempotency_key=idempotency_key,
        audit=audit,
        finished=not ids,
        request_hash=fingerprint,
    )
    if not created:
        # A twin with the same key was stored first.
        return Submission(_same_request(job, fingerprint), created=False)
    logger.info(
        "job %s created: %d IDs, requestedBy=%r, reason=%r, incident=%r",
        job.id,
        len(ids),
        request.requested_by,
        request.reason,
        request.incident_id,
    )
    return Submission(job, created)


def request_hash(request: DeleteRequest) -> str:
    """A digest of what `request` asks to be done: its IDs and values (in
    any order), the type of its values, and whether it is a dry run. Who
    asked and why are left out: a retry may word those differently."""
    asked = {
        "ids": sorted(set(request.ids)),
        "values": sorted(set(request.values)),
        "indicatorType": request.indicator_type,
        "dryRun": request.dry_run,
    }
    canonical = json.dumps(asked, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _same_request(job: Job, fingerprint: str) -> Job:
    """`job`, found by the request's idempotency key; raises RequestError
    (409) when the key was first used for a different request, which
    returning the job would silently leave undone."""
    if job.request_hash is None or job.request_hash == fingerprint:
        return job
    kind = "a dry run" if job.audit.get("dryRun") else "a request"
    raise RequestError(
        f"this Idempotency-Key (or requestId) was already used for {kind} "
        f"with other indicators or options (job {job.id}); a retry must repeat "
        "the request exactly. Use a new key for a new request",
        status=409,
        code="IdempotencyKeyReused",
    )


def _resolve(service: Service, request: DeleteRequest) -> Resolution | None:
    if not request.values:
        return None
    try:
        return resolve_values(service.client, request.values, request.indicator_type)
    except ValueError as exc:
        raise RequestError(f"IndicatorValues: {exc}") from exc


def _dry_run(
    service: Service,
    request: DeleteRequest,
    ids: list[int],
    resolution: Resolution | None,
    audit: dict[str, Any],
    key: str | None,
    fingerprint: str,
) -> Submission:
    preview = _preview(service, ids, resolution)
    audit["dryRun"] = True
    audit["wouldDelete"] = len(preview["wouldDelete"])
    job, created = service.store.create(
        ids,
        requested_by=request.requested_by,
        reason=request.reason,
        idempotency_key=key,
        audit=audit,
        finished=True,
        request_hash=fingerprint,
    )
    logger.info("dry run %s: %d would be deleted", job.id, audit["wouldDelete"])
    return Submission(job, created, preview)


def _preview(
    service: Service, ids: list[int], resolution: Resolution | None
) -> dict[str, Any]:
    chosen: dict[int, tuple[Mapping[str, Any], str]] = {}
    for value, rows in (resolution.matches if resolution else {}).items():
        for row in rows:
            chosen.setdefault(int(row["id"]), (row, f"value {value!r}"))
    missing: list[int] = []
    explicit = [i for i in ids if i not in chosen]
    if explicit:
        tenant = {int(r["id"]): r for r in service.client.list_indicators()}
        for i in explicit:
            if i in tenant:
                chosen[i] = (tenant[i], "requested ID")
            else:
                missing.append(i)
    would = [
        {**{name: row.get(name) for name in _PREVIEW_FIELDS}, "rule": rule}
        for row, rule in chosen.values()
    ]
    return {
        "dryRun": True,
        "wouldDelete": sorted(would, key=lambda r: int(r["id"])),
        "notFound": {
            "ids": [str(i) for i in sorted(missing)],
            "values": list(resolution.unmatched) if resolution else [],
        },
    }


def _audit(
    request: DeleteRequest,
    resolution: Resolution | None,
    caller: Mapping[str, str] | None,
    source: str,
) -> dict[str, Any]:
    audit: dict[str, Any] = {
        "source": source,
        "caller": dict(caller or {}) or {"authentication": "function key"},
        "incidentId": request.incident_id,
        "incidentUrl": request.incident_url,
        "requestedIds": len(request.ids),
    }
    if resolution is not None:
        audit["values"] = {
            "indicatorType": request.indicator_type,
            "matched": {
                value: sorted(str(r["id"]) for r in rows)
                for value, rows in resolution.matches.items()
            },
            "unmatched": list(resolution.unmatched),
        }
    return audit
