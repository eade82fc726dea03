"""The seed tenant: 15,000 indicators as of a snapshot, moved to today.

The data ships gzipped inside this package. Its times are as of
`SNAPSHOT`; loading it shifts every timestamp by (now - SNAPSHOT) so each
expiry stays the same distance in the future.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from emulator.timestamps import shift_timestamp

__all__ = ["SEED_PATH", "SNAPSHOT", "load_seed"]

SNAPSHOT = datetime(2026, 12, 1, tzinfo=UTC)
# The List-shaped seed document, gzipped, with times as of SNAPSHOT.
SEED_PATH = Path(__file__).resolve().parent / "data" / "indicators.json.gz"
_TIME_FIELDS = ("creationTimeDateTimeUtc", "lastUpdateTime", "expirationTime")
_LIST_FIELDS = ("rbacGroupNames", "rbacGroupIds")


def load_seed(now: datetime | None = None) -> list[dict[str, Any]]:
    """The seed indicators with their times moved from `SNAPSHOT` to `now`.

    `now` defaults to the current UTC time and must be timezone-aware.
    """
    moment = datetime.now(UTC) if now is None else now
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")

    delta = moment - SNAPSHOT
    return [_shifted(row, delta) for row in _snapshot_rows()]


def _shifted(row: dict[str, Any], delta: timedelta) -> dict[str, Any]:
    copy = {
        key: list(value) if key in _LIST_FIELDS else value for key, value in row.items()
    }
    for name in _TIME_FIELDS:
        value = row.get(name)
        if value is not None:
            copy[name] = shift_timestamp(str(value), delta)
    return copy


@lru_cache(maxsize=1)
def _snapshot_rows() -> tuple[dict[str, Any], ...]:
    # Cached unshifted; `_shifted` copies every row, so callers cannot alter it.
    document = json.loads(gzip.decompress(SEED_PATH.read_bytes()))
    return tuple(document["value"])
