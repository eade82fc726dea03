"""``python -m bench.faults [--quick] [--only NAME ...]``: run the fault
scenarios, print one table and write it as JSON."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from localdev.stack import DEFAULT_WORKDIR

from .params import FULL, QUICK, FaultParams
from .runner import run_suite
from .scenarios import SPECS, select
from .table import NOTES, format_table, write_json

INTERRUPTED = 130
BUSY = 2
LOCK_FILE = "run.lock"
RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
RESULTS = "faults.json"
PARTIAL_RESULTS = "faults-partial.json"
WORKDIR = DEFAULT_WORKDIR / "faults"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    params = QUICK if args.quick else FULL
    output = args.output or _default_output(args)
    WORKDIR.mkdir(parents=True, exist_ok=True)
    with _only_run(WORKDIR / LOCK_FILE) as alone:
        if not alone:
            print(
                "another `python -m bench.faults` is using "
                f"{os.path.relpath(WORKDIR)}; wait for it to end",
                file=sys.stderr,
            )
            return BUSY
        return _run(args, params, output)


def _run(args: argparse.Namespace, params: FaultParams, output: Path) -> int:
    logging.basicConfig(
        filename=WORKDIR / "faults.log",
        filemode="w",
        level=logging.INFO,
        format="%(asctime)s %(threadName)s %(levelname)s %(name)s: %(message)s",
    )
    signal.signal(signal.SIGTERM, _interrupt)

    started = time.monotonic()
    try:
        results = run_suite(params, select(args.only), WORKDIR)
    except KeyboardInterrupt:
        # Every worker and server is stopped by now; the callers' threads
        # still polling would hold up a normal exit until their cap.
        print("interrupted; everything started was stopped", file=sys.stderr)
        sys.stderr.flush()
        os._exit(INTERRUPTED)
    elapsed = time.monotonic() - started

    print(format_table(results))
    print(f"{elapsed:.0f}s in all")
    write_json(output, params, results, NOTES, elapsed)
    print(f"results written to {os.path.relpath(output)}")
    return 0


@contextlib.contextmanager
def _only_run(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock on `path` (True), or report it taken (False):
    two runs would share one Azurite data directory and one set of logs."""
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        choices=[spec.name for spec in SPECS],
        help="run only this scenario (and the baseline); repeatable",
    )
    parser.add_argument("--quick", action="store_true", help="smaller tenants")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"where to write the JSON (default: bench/results/{RESULTS} for a "
        "full run, the work directory otherwise)",
    )
    return parser


def _default_output(args: argparse.Namespace) -> Path:
    """Only a full run replaces the published results; partial runs are
    kept beside the logs."""
    if args.quick or args.only:
        return WORKDIR / PARTIAL_RESULTS
    return RESULTS_DIR / RESULTS


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so every worker and server is stopped."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
