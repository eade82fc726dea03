"""The cleanup command: the cleanup policy, previewed or run on demand.

A preview is the default and is recorded as a finished dry-run job, as the
scheduled cleanup records one. Deleting takes ``--run`` and either a policy
whose mode is ``"delete"`` or an explicit ``--yes``, so a policy still in its
preview mode never deletes by accident.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shared.cleanup import (
    MODE_DELETE,
    Candidate,
    CleanupPolicy,
    PolicyError,
    Selection,
)
from shared.cleanup_job import CleanupRun, run_cleanup
from shared.service import get_service
from shared.settings import Settings
from shared.status import job_summary

from .caller import operator_name
from .commands import conclude
from .failures import EXIT_OK, InputError
from .reports import MAX_LISTED_ROWS, check_output_path, write_report
from .tables import format_table

__all__ = ["cleanup"]

logger = logging.getLogger(__name__)

_CANDIDATE_HEADERS = ("id", "rule", "type", "value", "application", "created")
_CREATED_CHARS = len("2026-01-31T23:59")
_JSON_START = "{"
_POLICY_SETTING = "CLEANUP_POLICY"


def cleanup(args: argparse.Namespace) -> int:
    """Preview, or with --run delete, what the cleanup policy selects."""
    check_output_path(args.output)
    service = get_service(args.tenant)
    policy = _policy(args.policy, service.settings)
    deleting = _may_delete(args, policy)
    if deleting and not policy.deletes:
        policy = dataclasses.replace(policy, mode=MODE_DELETE)

    requested_by = args.requested_by or operator_name()
    run = run_cleanup(service, policy, preview=not deleting, requested_by=requested_by)
    print(_selection_text(run, show_all=args.all))
    selection = {"selection": _selection_dict(run.selection)}
    if run.preview or not run.job.requested:
        written = write_report(args.output, {**job_summary(run.job), **selection})
        if written:
            print(written)
        return EXIT_OK

    wait = not args.no_wait
    return conclude(service, run.job, output=args.output, wait=wait, extra=selection)


def _policy(given: str | None, settings: Settings) -> CleanupPolicy:
    """The policy from --policy (a file or JSON text), else the setting."""
    origin = "--policy" if given is not None else _POLICY_SETTING
    try:
        if given is not None:
            text = _policy_text(given)
            return CleanupPolicy.from_json(text, own_client_id=settings.client_id)
        policy = settings.parsed_cleanup_policy()
    except PolicyError as exc:
        raise InputError([f"{origin}: {problem}" for problem in exc.problems]) from exc

    if policy is None:
        raise InputError([f"{_POLICY_SETTING} is not set; give one with --policy"])
    return policy


def _policy_text(given: str) -> str:
    if given.lstrip().startswith(_JSON_START):
        return given
    try:
        return Path(given).read_text(encoding="utf-8-sig")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InputError([f"--policy: cannot read {given}: {reason}"]) from exc


def _may_delete(args: argparse.Namespace, policy: CleanupPolicy) -> bool:
    """Whether this run deletes; raises InputError for an unconfirmed --run."""
    if not args.run:
        return False
    if not policy.deletes and not args.yes:
        raise InputError(
            [
                f"the policy's mode is {policy.mode!r}, so --run deletes only "
                "with --yes; nothing was listed or deleted"
            ]
        )
    return True


def _selection_text(run: CleanupRun, *, show_all: bool) -> str:
    selection = run.selection
    verb = "preview" if run.preview else "run"
    lines = [
        f"cleanup {verb} (job {run.job.id}): {len(selection.candidates)} "
        f"candidate(s) of {selection.examined} listed, {selection.kept} kept",
        "by rule: " + _counts(Counter(c.rule for c in selection.candidates)),
        "skipped: " + _counts(selection.skipped),
    ]
    shown = selection.candidates if show_all else selection.candidates[:MAX_LISTED_ROWS]
    if shown:
        lines.append(format_table(_CANDIDATE_HEADERS, _rows(shown)))
    hidden = len(selection.candidates) - len(shown)
    if hidden:
        lines.append(f"({hidden} more; --all lists them, --output writes them as JSON)")
    return "\n".join(lines)


def _rows(candidates: Sequence[Candidate]) -> list[list[object]]:
    return [
        [
            c.id,
            c.rule,
            c.indicator_type,
            c.value,
            c.application,
            c.created.isoformat()[:_CREATED_CHARS],
        ]
        for c in candidates
    ]


def _counts(counts: Mapping[str, int]) -> str:
    shown = [f"{name} {count}" for name, count in counts.items() if count]
    return ", ".join(shown) or "none"


def _selection_dict(selection: Selection) -> dict[str, Any]:
    return {
        "examined": selection.examined,
        "kept": selection.kept,
        "skipped": selection.skipped,
        "byRule": dict(Counter(c.rule for c in selection.candidates)),
        "candidates": [c.to_dict() for c in selection.candidates],
    }
