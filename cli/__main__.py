"""Command line
============

``python -m cli COMMAND`` (from the repository root, with the app's
packages installed) does the app's work from an operator's shell. It reads
the app settings listed under Settings from the environment, as the
functions do, so its jobs live in the same Table Storage: a job started here
shows in the HTTP API's job list and is resumed by the timer, and a job
started over HTTP can be followed here. Every job it starts records
``source: "cli"`` and the operator's login name and host.

``delete --file PATH``
    Deletes the indicators whose IDs the file lists: one per line, or CSV
    (the first column, or the column a header row names ``id`` or
    ``IndicatorId``). Blank lines and lines starting with ``#`` are skipped;
    ``--file -`` reads stdin. Every bad entry is reported with its line
    number and then nothing is submitted. The job is worked on here, with a
    progress bar, until it finishes.

``unblock VALUE... [--type T] [--file PATH]``
    Deletes every indicator that carries one of the IOC values (not only the
    first match), given as arguments or in a file, one per line.

    Both take ``--reason R``, ``--requested-by WHO`` (default: your login
    name), ``--tenant T``, ``--dry-run`` (list what would go), ``--no-wait``
    (start the job and return), ``--idempotency-key K`` and ``--output PATH``
    (the JSON report, shaped like the HTTP API's status document).

``cleanup [--preview | --run [--yes]] [--policy FILE|JSON] [--all]``
    Selects what the cleanup policy (``CLEANUP_POLICY``, or ``--policy`` to
    try another) would delete and prints the first 20 candidates (``--all``
    for every one, ``--output`` for JSON), the count per rule and the skip
    counts. A preview is the default and deletes nothing whatever the
    policy's mode. ``--run`` deletes, but only when the policy's mode is
    ``"delete"`` or with ``--yes``.

``watch JOB_ID``
    Follows a job until it finishes, working on it meanwhile as a status
    poll does, then prints its report.

``jobs [--status S] [--requested-by WHO] [--since ISO] [--top N]``
    Lists recent jobs: ID, status, creation time, requester, number of IDs
    and reason.

``--verbose`` logs what the library does. Exit status: 0 when the job
finished with every ID deleted or already gone (and for previews and
listings), 1 when some IDs failed or were forbidden or Defender failed, 2 for
bad input or settings (nothing was started), 130 when interrupted while
following a job (the job carries on; ``watch`` picks it up again).

Examples::

    python -m cli delete --file revoked.csv --reason "feed revoked" --output r.json
    python -m cli unblock 203.0.113.7 evil.example --reason "INC-4711 false positive"
    python -m cli cleanup --preview
    python -m cli cleanup --run --yes
    python -m cli jobs --requested-by alice --top 5
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from shared.errors import (
    CredentialError,
    DefenderError,
    RequestError,
    SettingsError,
    StorageError,
)

from .failures import (
    EXIT_FAILURES,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    FollowInterrupted,
    InputError,
)
from .parser import build_parser

__all__ = ["main"]

logger = logging.getLogger(__name__)

_VERBOSE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_QUIET_FORMAT = "%(levelname)s: %(message)s"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or arguments argparse refused
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE

    _configure_logging(verbose=args.verbose)
    try:
        return int(args.handler(args))
    except InputError as exc:
        return _fail(exc.lines, EXIT_USAGE)
    except (SettingsError, CredentialError) as exc:
        return _fail([str(exc)], EXIT_USAGE)
    except RequestError as exc:
        return _fail([exc.message], EXIT_USAGE)
    except StorageError as exc:
        return _fail([_storage_message(exc)], EXIT_USAGE)
    except DefenderError as exc:
        return _fail([f"Defender: {exc}"], EXIT_FAILURES)
    except FollowInterrupted as exc:
        return _fail([_interrupted_message(exc)], EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        return _fail(["interrupted"], EXIT_INTERRUPTED)


def _configure_logging(*, verbose: bool) -> None:
    # A no-op when the root logger already has handlers (under pytest).
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format=_VERBOSE_FORMAT if verbose else _QUIET_FORMAT,
        stream=sys.stderr,
    )


def _fail(lines: Sequence[str], status: int) -> int:
    for line in lines:
        print(f"error: {line}", file=sys.stderr)
    return status


def _storage_message(error: StorageError) -> str:
    # Only the cause's type: its text may hold a storage URL with a SAS key.
    cause = error.__cause__
    kind = f" ({type(cause).__name__})" if cause is not None else ""
    return f"Table Storage: {error}{kind}"


def _interrupted_message(stop: FollowInterrupted) -> str:
    tenant = f" --tenant {stop.tenant_id}" if stop.tenant_id else ""
    return (
        f"stopped following job {stop.job_id}; it carries on, and "
        f"python -m cli watch {stop.job_id}{tenant} picks it up"
    )


if __name__ == "__main__":
    sys.exit(main())
