"""The app's state table as the suite reads and steers it.

The suite looks past the app's API here only where the API has no door:
ending a dead worker's leases early (standing in for the 120 s a restart
would wait), putting aside what a cut-off scenario left, and reading the
shared budget's in-flight calls and the daily caps. The row layouts are the
app's (`shared.jobs`, `shared.table_budget`, `shared.caps`).
"""

from __future__ import annotations

import struct
import time
from typing import Any

from azure.data.tables import TableClient, UpdateMode

__all__ = ["StateTable"]

_PIECE = "piece-"
_BUDGET = "budget-"
_CAP = "cap-"
_CLAIMED = "claimed"
_DONE = "done"
# A budget row packs (key, time) pairs; a call in flight has its time negated.
_BUDGET_RECORD = struct.Struct("<qd")


class StateTable:
    """One tenant's partition of the app's state table."""

    def __init__(self, table: TableClient, partition: str) -> None:
        self._table = table
        self._partition = partition

    def close(self) -> None:
        self._table.close()

    def expire_claims(self) -> int:
        """End every claim's lease now, as if its time had passed; returns
        how many pieces were claimed.

        Only for pieces whose worker is known dead: a live worker's claim
        ended early would be sent twice.
        """
        claimed = [row for row in self._unfinished() if row["State"] == _CLAIMED]
        for row in claimed:
            self._merge(row, {"LeaseUntil": time.time() - 1})
        return len(claimed)

    def discard_unfinished(self) -> int:
        """Mark what a cut-off scenario left as done, so the next scenario's
        workers do not pick it up; returns how many pieces that was."""
        rows = self._unfinished()
        for row in rows:
            self._merge(row, {"State": _DONE})
        return len(rows)

    def budget_in_flight(self, api: str = "") -> int:
        """Calls (of `api`, or of every API) that the app's shared budget
        still counts as in flight."""
        return sum(
            1
            for row in self._rows(_BUDGET + api)
            for _, at in _BUDGET_RECORD.iter_unpack(_whole_records(row))
            if at < 0
        )

    def forget_budget(self) -> None:
        """Drop the shared budget's rows; the app creates them afresh."""
        for row in self._rows(_BUDGET):
            self._table.delete_entity(row["PartitionKey"], row["RowKey"])

    def daily_cap_used(self) -> int:
        """IDs reserved from the daily caps so far (every day's row)."""
        return sum(int(row.get("Used") or 0) for row in self._rows(_CAP))

    def _unfinished(self) -> list[dict[str, Any]]:
        return [row for row in self._rows(_PIECE) if row["State"] != _DONE]

    def _rows(self, prefix: str) -> list[dict[str, Any]]:
        query = "PartitionKey eq @partition and RowKey ge @low and RowKey lt @high"
        parameters = {"partition": self._partition, "low": prefix, "high": prefix + "~"}
        rows = self._table.query_entities(query, parameters=parameters)
        return [dict(row) for row in rows]

    def _merge(self, row: dict[str, Any], changes: dict[str, Any]) -> None:
        keys = {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"]}
        self._table.update_entity({**keys, **changes}, mode=UpdateMode.MERGE)


def _whole_records(row: dict[str, Any]) -> bytes:
    raw = bytes(row.get("Calls") or b"")
    return raw[: len(raw) - len(raw) % _BUDGET_RECORD.size]
