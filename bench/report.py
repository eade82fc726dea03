"""The results: one row per run, the app's targets, the table and the JSON."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .params import BenchParams
from .scoring import Score

__all__ = [
    "NOTES",
    "OURS",
    "Check",
    "Row",
    "format_table",
    "targets_for",
    "write_json",
]

OURS = "ours"
WALL_FACTOR = 1.05
CALLS_FACTOR = 1.1
MAX_SMALL_REQUEST_CALLS = 10
# What the numbers mean, stored with them.
NOTES = {
    "ideal_s": (
        "least time the scaled limits allow for ceil(existing IDs / 500) "
        "BatchDelete calls counted on arrival (call k no earlier than call k-c "
        "plus W for each limit c/W), no earlier than the last request's "
        "arrival, plus one call's latency; see bench/ideal.py"
    ),
    "wall_s": (
        "ours: first POST to the last job's completion as recorded by the app; "
        "baselines: start to the last caller's return, or the cap"
    ),
    "api_calls": "BatchDelete, single DELETE and List calls in the emulator's log",
    "throttled": "429 answers in the emulator's log",
    "deleted": "indicators that left the tenant during the run, not by expiry",
    "wrong": (
        "distinct IDs requested but still present, gone but not requested, "
        "reported deleted without a 204 carrying them, or reported not found "
        "although a 204 carried them; see bench/scoring.py"
    ),
    "linger_s": (
        "BATCH_LINGER_SECONDS (1 s) and BATCH_MAX_LINGER_SECONDS (10 s) are "
        "the real defaults times the time scale (6/60), like every other time "
        "constant tied to the limits"
    ),
    "storage": "a new LocalStack with empty Azurite storage for each scenario",
    "workers": (
        "python -m localdev.worker processes, ready before the first request; "
        "timer functions disabled; MAX_IDS_PER_REQUEST and MAX_DELETES_PER_DAY "
        "set high enough to admit the scenario"
    ),
}
_COLUMNS = (
    "scenario",
    "strategy",
    "workers",
    "wall_s",
    "ideal_s",
    "api_calls",
    "throttled",
    "deleted",
    "wrong",
    "targets",
)
_NUMERIC = frozenset(
    {"workers", "wall_s", "ideal_s", "api_calls", "throttled", "deleted", "wrong"}
)


@dataclass(frozen=True)
class Check:
    """One of the app's targets and whether this run met it."""

    name: str
    passed: bool

    def __str__(self) -> str:
        return f"{self.name} {'PASS' if self.passed else 'MISS'}"


@dataclass(frozen=True)
class Row:
    """One strategy's run of one scenario."""

    key: str
    scenario: str
    strategy: str
    workers: int
    wall_s: float
    ideal_s: float
    ideal_calls: int
    capped: bool
    score: Score
    extra: dict[str, Any] = field(default_factory=dict)
    targets: tuple[Check, ...] = ()

    def to_json(self) -> dict[str, Any]:
        s = self.score
        return {
            "scenario": self.scenario,
            "strategy": self.strategy,
            "workers": self.workers,
            "wall_s": round(self.wall_s, 3),
            "ideal_s": round(self.ideal_s, 3),
            "api_calls": s.api_calls,
            "throttled": s.throttled,
            "deleted": s.deleted,
            "wrong": s.wrong,
            "capped": self.capped,
            "ideal_calls": self.ideal_calls,
            "calls_by_api": s.calls_by_api,
            "wrong_detail": s.wrong_detail,
            "batch_sizes": s.batch_sizes,
            "targets": {c.name: c.passed for c in self.targets},
            **self.extra,
        }


def targets_for(
    key: str, wall_s: float, ideal_s: float, ideal_calls: int, score: Score
) -> tuple[Check, ...]:
    """The app's targets for scenario `key`, checked against one run."""
    batch_calls = score.calls_by_api["batch_delete"]
    checks: list[Check] = []
    if key == "a":
        checks.append(
            Check(f"wall<={WALL_FACTOR:g}xideal", wall_s <= WALL_FACTOR * ideal_s)
        )
        checks.append(Check("throttled=0", score.throttled == 0))
    elif key == "b":
        limit = CALLS_FACTOR * ideal_calls
        checks.append(Check(f"BatchDelete<={limit:g}", batch_calls <= limit))
    elif key == "c":
        limit = MAX_SMALL_REQUEST_CALLS
        checks.append(Check(f"BatchDelete<={limit}", batch_calls <= limit))
    checks.append(Check("wrong=0", score.wrong == 0))
    return tuple(checks)


def format_table(rows: Sequence[Row]) -> str:
    """The results as one aligned text table."""
    cells = [_COLUMNS, *(_cells(row) for row in rows)]
    widths = [max(len(line[n]) for line in cells) for n in range(len(_COLUMNS))]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if name in _NUMERIC else value.ljust(width)
            for name, value, width in zip(_COLUMNS, values, widths, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])


def _cells(row: Row) -> tuple[str, ...]:
    s = row.score
    wall = f"{row.wall_s:.1f}" + (" capped" if row.capped else "")
    return (
        row.scenario,
        row.strategy,
        str(row.workers),
        wall,
        f"{row.ideal_s:.2f}",
        str(s.api_calls),
        str(s.throttled),
        str(s.deleted),
        str(s.wrong),
        ", ".join(str(c) for c in row.targets),
    )


def write_json(
    path: Path,
    params: BenchParams,
    rows: Sequence[Row],
    notes: dict[str, str],
    machine: dict[str, Any],
) -> None:
    """Write the rows and parameters to `path`, replacing it in one step."""
    document = {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "parameters": params.to_json(),
        "machine": machine,
        "notes": notes,
        "rows": [row.to_json() for row in rows],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(partial, path)
