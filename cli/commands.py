"""The delete, unblock, watch and jobs commands.

Requests go through the HTTP API's own validation (`parse_delete_request`)
and its submission path (`submit`), so the caps, value resolution and audit
record are the same whichever door a job came in by.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from shared.errors import RequestError
from shared.http_api import DeleteRequest, parse_delete_request
from shared.ids import MAX_REPORTED_PROBLEMS
from shared.jobs import Job
from shared.service import Service, get_service
from shared.submission import submit

from .caller import caller, operator_name
from .entries import (
    ID_COLUMNS,
    VALUE_COLUMNS,
    Entries,
    describe_problems,
    entries_from_arguments,
    read_entries,
)
from .failures import EXIT_OK, InputError
from .progress import follow
from .reports import (
    check_output_path,
    exit_code,
    job_document,
    preview_document,
    preview_summary,
    report_summary,
    write_report,
)
from .tables import format_table

__all__ = ["CLI_SOURCE", "conclude", "delete", "jobs", "unblock", "watch"]

logger = logging.getLogger(__name__)

CLI_SOURCE = "cli"
_JSON = "application/json"
_IDS_FIELD = "IndicatorIds"
_VALUES_FIELD = "IndicatorValues"
_JOB_ID_CHARS = 32
_HEX = frozenset("0123456789abcdef")
_NOTHING_SUBMITTED = "nothing was submitted"
# The HTTP API's status for a body over its size limit.
_TOO_LARGE = 413
_JOB_HEADERS = ("id", "status", "created", "requestedBy", "requested", "reason")


def delete(args: argparse.Namespace) -> int:
    """Delete the indicators whose IDs a file lists."""
    entries = _read(args.file, ID_COLUMNS, split_bare=True)
    if not entries.items:
        raise InputError([f"{entries.source} lists no indicator IDs"])

    request = _request(args, {_IDS_FIELD: entries.items}, entries)
    return _submit(args, request)


def unblock(args: argparse.Namespace) -> int:
    """Delete every indicator carrying one of the given IOC values."""
    entries = entries_from_arguments(args.values)
    if args.file is not None:
        entries = entries + _read(args.file, VALUE_COLUMNS, split_bare=False)
    if not entries.items:
        raise InputError(["give the values to unblock as arguments or with --file"])

    fields = {_VALUES_FIELD: entries.items, "indicatorType": args.type}
    request = _request(args, fields, entries)
    return _submit(args, request)


def watch(args: argparse.Namespace) -> int:
    """Follow a job, working on it, until it finishes."""
    check_output_path(args.output)
    service = get_service(args.tenant)
    job = _find_job(service, args.job_id)
    return conclude(service, job, output=args.output, wait=True)


def jobs(args: argparse.Namespace) -> int:
    """List recent jobs, newest first."""
    service = get_service(args.tenant)
    found = service.store.find_jobs(
        limit=args.top,
        status=args.status,
        requested_by=args.requested_by,
        since=args.since,
    )
    if not found:
        print("no jobs match")
        return EXIT_OK

    rows = [
        [j.id, j.status.value, j.created, j.requested_by, j.requested, j.reason]
        for j in found
    ]
    print(format_table(_JOB_HEADERS, rows))
    return EXIT_OK


def conclude(
    service: Service,
    job: Job,
    *,
    output: str | None,
    wait: bool,
    extra: Mapping[str, Any] | None = None,
) -> int:
    """Follow `job` to its end (unless not waiting), print and write its
    report with `extra` entries, and return the exit code it earns."""
    if not wait and not job.finished:
        document = {**job_document(service, job), **(extra or {})}
        _say(
            f"job {job.id} is {job.status.value} with {job.requested} ID(s); "
            f"follow it with: {_watch_hint(service, job)}",
            write_report(output, document),
        )
        return EXIT_OK

    finished = follow(service, job)
    document = {**job_document(service, finished), **(extra or {})}
    _say(report_summary(document), write_report(output, document))
    return exit_code(document)


def _read(path: str, columns: Sequence[str], *, split_bare: bool) -> Entries:
    try:
        return read_entries(path, columns, split_bare=split_bare)
    except UnicodeDecodeError as exc:
        raise InputError([f"--file: {path} is not UTF-8 text"]) from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InputError([f"--file: cannot read {path}: {reason}"]) from exc


def _request(
    args: argparse.Namespace, fields: dict[str, object], entries: Entries
) -> DeleteRequest:
    """The request as the HTTP API would validate it; raises InputError."""
    document = {
        **fields,
        "dryRun": args.dry_run,
        "reason": args.reason,
        "requestedBy": args.requested_by or operator_name(),
        "tenantId": args.tenant,
    }
    body = {name: value for name, value in document.items() if value is not None}
    try:
        return parse_delete_request(_JSON, json.dumps(body).encode())
    except RequestError as exc:
        lines = describe_problems(exc, entries)
        if len(exc.problems) >= MAX_REPORTED_PROBLEMS:
            lines.append(f"(at most {MAX_REPORTED_PROBLEMS} problems are listed)")
        if exc.status == _TOO_LARGE:
            lines = [f"{entries.source} lists more than one request can carry"]
        raise InputError([*lines, _NOTHING_SUBMITTED]) from exc


def _submit(args: argparse.Namespace, request: DeleteRequest) -> int:
    check_output_path(args.output)
    service = get_service(args.tenant)
    submission = submit(
        service,
        request,
        idempotency_key=args.idempotency_key,
        caller=caller(),
        source=CLI_SOURCE,
    )
    if submission.preview is not None:
        document = preview_document(submission.job, submission.preview)
        _say(preview_summary(document), write_report(args.output, document))
        return EXIT_OK

    if not submission.created:
        print(f"job {submission.job.id} was submitted before with this key")
    return conclude(service, submission.job, output=args.output, wait=not args.no_wait)


def _find_job(service: Service, job_id: str) -> Job:
    text = job_id.strip().lower()
    # Table keys cannot hold some characters; a job ID is 32 hex digits.
    plausible = len(text) == _JOB_ID_CHARS and set(text) <= _HEX
    job = service.store.get(text) if plausible else None
    if job is None:
        raise InputError([f"there is no job {job_id!r} in tenant {service.tenant_id}"])
    return job


def _watch_hint(service: Service, job: Job) -> str:
    tenant = "" if service.is_home else f" --tenant {service.tenant_id}"
    return f"python -m cli watch {job.id}{tenant}"


def _say(*parts: str | None) -> None:
    for part in parts:
        if part:
            print(part)
