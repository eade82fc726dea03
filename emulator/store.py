"""The emulated tenant: active indicators in ID order, and their expiry.

Stored rows are never changed in place; an update replaces the row. That lets
a handler hand rows to the JSON encoder after the emulator's lock is released.
Defender removes an indicator itself once its ``expirationTime`` passes, so
`expire` is called with the current time before every read or change.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Mapping
from typing import Any

from emulator.timestamps import parse_timestamp

__all__ = ["MAX_ACTIVE_INDICATORS", "IndicatorStore", "normalize_id"]

# Defender's per-tenant cap on active indicators; it cannot be raised.
MAX_ACTIVE_INDICATORS = 15_000

_DIGITS = re.compile(r"[0-9]+")
_LIST_FIELDS = ("rbacGroupNames", "rbacGroupIds")


def normalize_id(value: Any) -> str | None:
    """The canonical ID for an integer or digit string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value >= 0 else None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return str(int(value))
    return None


class IndicatorStore:
    """Indicators by ID. Not thread-safe: callers hold the emulator's lock."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}
        self._expiries: list[tuple[float, str]] = []
        self._by_value: dict[tuple[str, str], set[str]] = {}
        self._highest_id = 0

    def __len__(self) -> int:
        return len(self._rows)

    def load(self, indicators: Iterable[Mapping[str, Any]]) -> None:
        """Replace every indicator; raises ValueError for a bad ID or expiry."""
        rows = [_stored_copy(indicator) for indicator in indicators]
        ids = [row["id"] for row in rows]
        if len(set(ids)) != len(ids):
            raise ValueError("indicator IDs must be unique")

        rows.sort(key=lambda row: int(row["id"]))
        self._rows = {}
        self._expiries = []
        self._by_value = {}
        self._highest_id = 0
        for row in rows:
            self.put(row)

    def expire(self, now: float) -> None:
        """Remove every indicator whose expiry is at or before `now`."""
        while self._expiries and self._expiries[0][0] <= now:
            expiry, indicator_id = heapq.heappop(self._expiries)
            row = self._rows.get(indicator_id)
            # An update may have moved the expiry since this entry was pushed.
            if row is not None and _expiry_epoch(row) == expiry:
                self._drop(indicator_id)

    def active(self) -> list[dict[str, Any]]:
        """Every stored row, in ascending ID order (call `expire` first)."""
        return list(self._rows.values())

    def get(self, indicator_id: str) -> dict[str, Any] | None:
        return self._rows.get(indicator_id)

    def find(self, indicator_type: str, value: str) -> list[dict[str, Any]]:
        """Rows with this type and value, in ID order."""
        ids = self._by_value.get((indicator_type, value), set())
        return sorted((self._rows[i] for i in ids), key=lambda row: int(row["id"]))

    def remove(self, indicator_ids: Iterable[str]) -> None:
        for indicator_id in indicator_ids:
            if indicator_id in self._rows:
                self._drop(indicator_id)

    def next_id(self) -> str:
        """An ID above every one this tenant has held since its last load."""
        return str(self._highest_id + 1)

    def put(self, row: dict[str, Any]) -> None:
        """Add a row or replace the one with its ID; the store owns it after."""
        indicator_id = row["id"]
        previous = self._rows.get(indicator_id)
        if previous is not None:
            self._unindex(previous)
        in_order = previous is not None or self._comes_last(indicator_id)

        self._rows[indicator_id] = row
        if not in_order:
            self._rows = dict(sorted(self._rows.items(), key=lambda i: int(i[0])))
        self._index(row)

    def _comes_last(self, indicator_id: str) -> bool:
        return not self._rows or int(indicator_id) > int(next(reversed(self._rows)))

    def _index(self, row: dict[str, Any]) -> None:
        indicator_id = row["id"]
        self._highest_id = max(self._highest_id, int(indicator_id))
        self._by_value.setdefault(_value_key(row), set()).add(indicator_id)
        expiry = _expiry_epoch(row)
        if expiry is not None:
            heapq.heappush(self._expiries, (expiry, indicator_id))

    def _unindex(self, row: dict[str, Any]) -> None:
        self._by_value.get(_value_key(row), set()).discard(row["id"])

    def _drop(self, indicator_id: str) -> None:
        self._unindex(self._rows.pop(indicator_id))


def _value_key(row: Mapping[str, Any]) -> tuple[str, str]:
    return str(row.get("indicatorType")), str(row.get("indicatorValue"))


def _stored_copy(indicator: Mapping[str, Any]) -> dict[str, Any]:
    indicator_id = normalize_id(indicator.get("id"))
    if indicator_id is None:
        raise ValueError(f"indicator ID {indicator.get('id')!r} is not a number")

    row = {
        key: list(value) if key in _LIST_FIELDS and value is not None else value
        for key, value in indicator.items()
    }
    row["id"] = indicator_id
    _expiry_epoch(row)
    return row


def _expiry_epoch(row: Mapping[str, Any]) -> float | None:
    expiry = row.get("expirationTime")
    return None if expiry is None else parse_timestamp(str(expiry)).timestamp()
