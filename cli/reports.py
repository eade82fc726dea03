"""What a command prints when a job ends, and the JSON report it may write.

The JSON documents are the HTTP API's own: a job's status document, or for
a dry run the job with its preview, so one tool reads both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shared.jobs import Job
from shared.service import Service
from shared.status import job_summary, status_document

from .failures import EXIT_FAILURES, EXIT_OK, InputError
from .tables import format_table

__all__ = [
    "MAX_LISTED_ROWS",
    "check_output_path",
    "exit_code",
    "job_document",
    "preview_document",
    "preview_summary",
    "report_summary",
    "write_report",
]

# Rows a summary prints of a long list; --all or the JSON report has them all.
MAX_LISTED_ROWS = 20
_PREVIEW_HEADERS = ("id", "rule", "type", "value", "action", "application")
_FAILURE_HEADERS = ("id", "status", "code", "message")


def job_document(service: Service, job: Job) -> dict[str, Any]:
    """The job's status document, with its report once it has finished."""
    return status_document(job, service.store.pieces_of(job), None)


def preview_document(job: Job, preview: Mapping[str, Any]) -> dict[str, Any]:
    """A dry run as the HTTP API answers it: the job and its preview."""
    document = job_summary(job)
    document["output"] = dict(preview)
    return document


def report_summary(document: Mapping[str, Any]) -> str:
    """Counts, failures and unmatched values of a finished job."""
    output = document["output"]
    counts = output["counts"]
    lines = [
        f"job {document['id']}: {document['runtimeStatus']}",
        "  requested {requested}, deleted {deleted}, not found {notFound}, "
        "forbidden {forbidden}, failed {failed}".format(**counts),
    ]
    if document.get("input", {}).get("dryRun"):
        lines.append("  a dry run: nothing was deleted")
    refused = [*output["forbidden"], *output["failed"]]
    if refused:
        lines.append(_failure_table(refused))
    unmatched = output.get("values", {}).get("unmatched", [])
    if unmatched:
        lines.append(f"  no indicator carries: {', '.join(unmatched)}")
    return "\n".join(lines)


def preview_summary(document: Mapping[str, Any]) -> str:
    """What a dry run would delete, and what it did not find."""
    preview = document["output"]
    would = preview["wouldDelete"]
    lines = [f"dry run {document['id']}: would delete {len(would)} indicator(s)"]
    if would:
        rows = [_preview_row(r) for r in would[:MAX_LISTED_ROWS]]
        lines.append(format_table(_PREVIEW_HEADERS, rows))
        lines.extend(_more(len(would)))
    missing = preview["notFound"]
    if missing["ids"]:
        lines.append(f"not found: IDs {', '.join(missing['ids'])}")
    if missing["values"]:
        lines.append(f"no indicator carries: {', '.join(missing['values'])}")
    return "\n".join(lines)


def exit_code(document: Mapping[str, Any]) -> int:
    """1 when any ID failed or was forbidden, else 0."""
    counts = document["output"]["counts"]
    return EXIT_FAILURES if counts["failed"] or counts["forbidden"] else EXIT_OK


def check_output_path(path: str | None) -> None:
    """Refuse early a report that could not be written after the work."""
    if path is not None and not Path(path).resolve().parent.is_dir():
        raise InputError([f"--output: the folder of {path} does not exist"])


def write_report(path: str | None, document: Mapping[str, Any]) -> str | None:
    """Write the document as JSON; returns the line that says where."""
    if path is None:
        return None
    Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return f"report written to {path}"


def _preview_row(row: Mapping[str, Any]) -> list[object]:
    return [
        row["id"],
        row["rule"],
        row["indicatorType"],
        row["indicatorValue"],
        row["action"],
        row["application"],
    ]


def _failure_table(failures: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [f["id"], f["status"], f["code"], f["message"]]
        for f in failures[:MAX_LISTED_ROWS]
    ]
    table = format_table(_FAILURE_HEADERS, rows)
    return "\n".join([table, *_more(len(failures))])


def _more(total: int) -> list[str]:
    if total <= MAX_LISTED_ROWS:
        return []
    return [f"(first {MAX_LISTED_ROWS} of {total}; --output writes them all)"]
