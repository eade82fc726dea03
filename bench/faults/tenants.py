"""The tenants scenarios load: seed indicators, some gone, expiring or fenced.

Every tenant is a prefix of the seed (in ID order) holding more indicators
than are requested, so a deletion of something nobody asked for shows.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from functools import lru_cache
from typing import Any

from emulator import load_seed
from emulator.config import DEFAULT_DEVICE_GROUPS
from emulator.timestamps import format_timestamp, utc_from_epoch

__all__ = [
    "Row",
    "base_tenant",
    "every_nth",
    "expiring",
    "in_group",
    "interleave",
    "seed_rows",
    "split",
    "without",
]

Row = dict[str, Any]
# One tenant row in this many is left out of the request.
UNREQUESTED_EVERY = 4


@lru_cache(maxsize=1)
def _seed_in_id_order() -> tuple[Row, ...]:
    return tuple(sorted(load_seed(), key=lambda row: int(row["id"])))


def seed_rows(count: int) -> list[Row]:
    """The first `count` seed rows in ID order (the whole seed is 15,000).

    The seed's nearest expiry is days away, so rows built now hold for a run.
    """
    return [dict(row) for row in _seed_in_id_order()[:count]]


def base_tenant(size: int, requested: int) -> tuple[list[Row], tuple[int, ...]]:
    """The first `size` seed rows and `requested` of their IDs, in ID order."""
    rows = seed_rows(size)
    ids = [
        int(row["id"])
        for n, row in enumerate(rows)
        if n % UNREQUESTED_EVERY != UNREQUESTED_EVERY - 1
    ]
    if len(ids) < requested:
        raise ValueError(f"a tenant of {size} cannot supply {requested} IDs")
    return rows, tuple(ids[:requested])


def interleave(*parts: Sequence[int], size: int) -> tuple[int, ...]:
    """The parts' IDs, taking `size` from each in turn, so that consecutive
    batches alternate between them."""
    chunks = [split(part, size) for part in parts]
    longest = max(len(c) for c in chunks)
    return tuple(i for n in range(longest) for c in chunks if n < len(c) for i in c[n])


def every_nth(ids: Sequence[int], n: int) -> tuple[int, ...]:
    """Every `n`th ID, spread evenly over the request's batches."""
    return tuple(ids[n - 1 :: n])


def without(rows: Iterable[Row], ids: Collection[int]) -> list[Row]:
    return [row for row in rows if int(row["id"]) not in ids]


def expiring(
    rows: Iterable[Row], ids: Sequence[int], first_s: float, last_s: float
) -> list[Row]:
    """Rows whose `ids` expire between `first_s` and `last_s` from now,
    evenly spread in the order given (all at `first_s` when they are equal)."""
    now = time.time()
    step = (last_s - first_s) / max(1, len(ids) - 1)
    when = {i: now + first_s + n * step for n, i in enumerate(ids)}
    changed = []
    for row in rows:
        moment = when.get(int(row["id"]))
        if moment is not None:
            row = {**row, "expirationTime": format_timestamp(utc_from_epoch(moment))}
        changed.append(row)
    return changed


def in_group(rows: Iterable[Row], group_name: str) -> set[int]:
    """IDs of rows scoped to the device group `group_name`."""
    group = DEFAULT_DEVICE_GROUPS[group_name]
    return {int(row["id"]) for row in rows if group in (row.get("rbacGroupIds") or ())}


def split(ids: Sequence[int], size: int) -> tuple[tuple[int, ...], ...]:
    """Consecutive requests of at most `size` IDs."""
    return tuple(tuple(ids[n : n + size]) for n in range(0, len(ids), size))
