"""``python -m bench [--quick]``: run the benchmark, print the table, save JSON."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from localdev.stack import DEFAULT_WORKDIR, REPO_ROOT

from .params import FULL, QUICK, BenchParams
from .report import NOTES, Row, format_table, write_json
from .runner import run_all

RESULTS_DIR = Path(__file__).resolve().parent / "results"
WORKDIR = DEFAULT_WORKDIR / "bench"
PRODUCT_PATHS = ("shared", "BatchDeleteHttp", "BatchDeleteTimer", "host.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="a reduced run for a smoke check"
    )
    parser.add_argument("--output", type=Path, help="where to write the JSON")
    parser.add_argument(
        "--only",
        metavar="KEYS",
        help="run only these scenarios, e.g. 'c' or 'a,b' (results go to the "
        "work folder unless --output is given)",
    )
    parser.add_argument(
        "--ours-only", action="store_true", help="skip the baseline strategies"
    )
    args = parser.parse_args(argv)
    params = QUICK if args.quick else FULL
    # A smoke run's results stay out of the committed record.
    partial = args.quick or args.only or args.ours_only
    output = args.output or (
        WORKDIR / f"{params.mode}-partial.json"
        if partial
        else RESULTS_DIR / "latest.json"
    )
    only = set(args.only.split(",")) if args.only else None

    # Quick and full runs keep their stacks' logs apart.
    workdir = WORKDIR / params.mode
    workdir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=workdir / "bench.log",
        filemode="w",
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    rows, machine = _measure(params, workdir, only, not args.ours_only)
    print(format_table(rows))
    print(", ".join(f"{name} {value}" for name, value in machine.items()))
    write_json(output, params, rows, NOTES, machine)
    print(f"results written to {os.path.relpath(output)}")
    return 0


def _measure(
    params: BenchParams, workdir: Path, only: set[str] | None, baselines: bool
) -> tuple[list[Row], dict[str, Any]]:
    """Run everything; return the rows and what the machine was doing."""
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    code_before = _code_version()
    rows = run_all(params, workdir, only=only, baselines=baselines)
    code_after = _code_version()
    machine: dict[str, Any] = {
        "cores": os.cpu_count(),
        "load_average_1m_before": round(load_before, 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "elapsed_s": round(time.monotonic() - started, 1),
        "code": code_before,
    }
    if code_after != code_before:
        # The product changed under the run: its scenarios ran different code.
        machine["code_after"] = code_after
    return rows, machine


def _code_version() -> str:
    """The commit measured, marked when the product's files had local edits."""
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        edited = _git("status", "--porcelain", "--", *PRODUCT_PATHS)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" with local edits" if edited else "")


def _git(*args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
