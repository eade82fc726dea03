"""The suite's one table, and the same rows as JSON."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .params import FaultParams
from .runner import Result

__all__ = ["NOTES", "format_table", "write_json"]

# What the columns mean and how the suite runs, written into the JSON.
NOTES = {
    "stack": (
        "one LocalStack with fresh Azurite storage for the whole run; the "
        "timer functions are off, so worker processes and HTTP calls do the "
        "work; a worker that dies on its own is replaced, as the next timer "
        "tick would resume its work"
    ),
    "between scenarios": (
        "the emulator's tenant, faults, limits and call log and the app's "
        "shared budget rows are reset; jobs stay, each scenario reading only "
        "those it made"
    ),
    "deleted": "requested IDs present at the start and gone at the end",
    "reported": "distinct IDs in the app's reports, of any kind",
    "lost": (
        "requested IDs still present and not reported failed or forbidden, "
        "plus IDs reported deleted that are still present"
    ),
    "misreported": (
        "reported deleted without a 204 BatchDelete carrying them, reported "
        "notFound while present, reported twice, not requested, or missing "
        "from every report (a job that never finished reports nothing)"
    ),
    "extra_calls": (
        "Defender calls beyond ceil(existing requested IDs / 500) BatchDelete "
        "calls plus the List calls of the clean baseline run (none for jobs "
        "of at most 500 IDs, which do not list first)"
    ),
    "throttled": "calls the emulator answered 429",
    "bench_wrong": (
        "bench.scoring's `wrong`, which also counts forbidden IDs left in place "
        "and notFound IDs that a 204 had deleted (after a crash or a lost answer)"
    ),
    "worker-sigkill": (
        "the dead worker's leases are ended at once rather than after 120 s"
    ),
    "expiring-*": (
        "the emulator's clock is moved past the expiry of 1% of the requested "
        "indicators right after the app's first List call"
    ),
}

_COLUMNS = (
    "scenario",
    "requested",
    "deleted",
    "reported",
    "lost",
    "misreported",
    "extra_calls",
    "throttled",
    "wall_s",
)
_LEFT_ALIGNED = 1


def format_table(results: Sequence[Result]) -> str:
    """The results as one aligned text table."""
    cells = [_COLUMNS, *(_cells(result) for result in results)]
    widths = [max(len(line[n]) for line in cells) for n in range(len(_COLUMNS))]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.ljust(width) if n < _LEFT_ALIGNED else value.rjust(width)
            for n, (value, width) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])


def _cells(result: Result) -> tuple[str, ...]:
    t = result.tally
    wall = f"{result.wall_s:.1f}" + (" capped" if result.capped else "")
    return (
        result.name,
        str(t.requested),
        str(t.deleted),
        str(t.reported),
        str(t.lost),
        str(t.misreported),
        str(t.extra_calls),
        str(t.throttled),
        wall,
    )


def to_json(result: Result) -> dict[str, Any]:
    t = result.tally
    return {
        "scenario": result.name,
        "description": result.description,
        "requested": t.requested,
        "deleted": t.deleted,
        "reported": t.reported,
        "lost": t.lost,
        "misreported": t.misreported,
        "extra_calls": t.extra_calls,
        "throttled": t.throttled,
        "bench_wrong": t.wrong,
        "wall_s": round(result.wall_s, 3),
        "capped": result.capped,
        **t.detail,
        **result.notes,
    }


def write_json(
    path: Path,
    params: FaultParams,
    results: Sequence[Result],
    notes: dict[str, str],
    elapsed_s: float,
) -> None:
    """Write the rows and parameters to `path`, replacing it in one step."""
    document = {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "elapsed_s": round(elapsed_s, 1),
        "parameters": {**params.to_json(), "cores": os.cpu_count()},
        "notes": notes,
        "rows": [to_json(result) for result in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(partial, path)
