"""The command line's arguments: one sub-command per operator task."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable

from shared.http_api import INDICATOR_TYPES
from shared.jobs import JobStatus

from . import cleanup_command, commands
from .entries import STDIN_PATH

__all__ = ["DEFAULT_TOP", "MAX_TOP", "build_parser"]

DEFAULT_TOP = 20
# The HTTP API's own ceiling for one listing.
MAX_TOP = 500
_PROGRAM = "python -m cli"


def build_parser() -> argparse.ArgumentParser:
    """The parser; each sub-command sets `handler` to the function it runs."""
    parser = argparse.ArgumentParser(
        prog=_PROGRAM,
        description="Delete Defender indicators in bulk through this app's "
        "durable jobs, from the operator's shell.",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log what the library does (INFO)"
    )
    commands_ = parser.add_subparsers(dest="command", required=True)
    _add_delete(commands_)
    _add_unblock(commands_)
    _add_cleanup(commands_)
    _add_watch(commands_)
    _add_jobs(commands_)
    return parser


# argparse names the type of its sub-command registry only privately.
_Commands = argparse._SubParsersAction


def _command(
    commands_: _Commands[argparse.ArgumentParser],
    name: str,
    handler: Callable[[argparse.Namespace], int],
    text: str,
) -> argparse.ArgumentParser:
    sub: argparse.ArgumentParser = commands_.add_parser(
        name, help=text, description=text
    )
    sub.set_defaults(handler=handler)
    # SUPPRESS keeps a sub-command from resetting a --verbose given before it.
    sub.add_argument(
        "--verbose", action="store_true", default=argparse.SUPPRESS, help="log INFO"
    )
    sub.add_argument("--tenant", help="a tenant from DEFENDER_TENANT_IDS")
    sub.add_argument("--output", metavar="PATH", help="write a JSON report here")
    return sub


def _add_request_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--reason", help="why, for the audit record")
    sub.add_argument(
        "--requested-by", metavar="WHO", help="who asks (default: your login name)"
    )
    sub.add_argument(
        "--dry-run", action="store_true", help="show what would go; delete nothing"
    )
    sub.add_argument(
        "--no-wait",
        action="store_true",
        help="start the job and return; follow it later with watch",
    )
    sub.add_argument(
        "--idempotency-key",
        metavar="K",
        help="a repeated key returns the job it first made",
    )


def _add_delete(commands_: _Commands[argparse.ArgumentParser]) -> None:
    sub = _command(
        commands_, "delete", commands.delete, "Delete indicators by ID from a file."
    )
    sub.add_argument(
        "--file",
        required=True,
        metavar="PATH",
        help="IDs one per line, or CSV (first column, or a column named id or "
        f"IndicatorId); # comments and blank lines skipped; {STDIN_PATH} is stdin",
    )
    _add_request_options(sub)


def _add_unblock(commands_: _Commands[argparse.ArgumentParser]) -> None:
    sub = _command(
        commands_,
        "unblock",
        commands.unblock,
        "Delete every indicator that carries one of the given IOC values.",
    )
    sub.add_argument("values", nargs="*", metavar="VALUE", help="IOC values")
    sub.add_argument("--type", choices=INDICATOR_TYPES, help="match only this type")
    sub.add_argument(
        "--file",
        metavar="PATH",
        help="more values, one per line (or CSV with a value column); "
        f"{STDIN_PATH} is stdin",
    )
    _add_request_options(sub)


def _add_cleanup(commands_: _Commands[argparse.ArgumentParser]) -> None:
    sub = _command(
        commands_,
        "cleanup",
        cleanup_command.cleanup,
        "Preview (the default) or run the cleanup policy (CLEANUP_POLICY).",
    )
    mode = sub.add_mutually_exclusive_group()
    mode.add_argument(
        "--preview",
        action="store_true",
        help="list the candidates and delete nothing, whatever the policy's mode",
    )
    mode.add_argument(
        "--run",
        action="store_true",
        help='delete the candidates; only when the policy\'s mode is "delete" '
        "or --yes is given",
    )
    sub.add_argument(
        "--yes", action="store_true", help="confirm --run for a policy in preview mode"
    )
    sub.add_argument(
        "--policy", metavar="FILE|JSON", help="try this policy instead of the setting"
    )
    sub.add_argument("--all", action="store_true", help="list every candidate")
    sub.add_argument("--requested-by", metavar="WHO", help="default: your login name")
    sub.add_argument(
        "--no-wait", action="store_true", help="with --run: start and return"
    )


def _add_watch(commands_: _Commands[argparse.ArgumentParser]) -> None:
    sub = _command(
        commands_,
        "watch",
        commands.watch,
        "Follow a job, working on it, until it finishes.",
    )
    sub.add_argument("job_id", metavar="JOB_ID")


def _add_jobs(commands_: _Commands[argparse.ArgumentParser]) -> None:
    sub = _command(commands_, "jobs", commands.jobs, "List recent jobs, newest first.")
    sub.add_argument("--status", choices=[s.value for s in JobStatus])
    sub.add_argument("--requested-by", metavar="WHO")
    sub.add_argument(
        "--since", type=_utc_time, metavar="ISO", help="e.g. 2026-01-31T00:00:00Z"
    )
    sub.add_argument(
        "--top", type=_top, default=DEFAULT_TOP, metavar="N", help="1 to 500"
    )


def _utc_time(text: str) -> str:
    """An ISO 8601 time as the job records store theirs (UTC, ms, Z)."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    utc = moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    return utc.replace("+00:00", "Z")


def _top(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_TOP:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_TOP}")
    return int(text)
