"""The daily cap's group commit, against an in-memory table at the SDK seam.

The same counter runs against Azurite, from threads of several processes'
worth of `DailyCap` instances, in tests/integration/test_daily_cap.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.data.tables import TableEntity

from shared.caps import DailyCap
from shared.errors import RequestError, StorageError

PARTITION = "tenant"
# 2026-12-04T12:00:00Z: the row is cap-20261204.
NOON = 1_796_385_600.0
ROW = "cap-20261204"


class FakeTable:
    """Just the three entity calls DailyCap makes, with ETags; `before_write`
    runs inside each write, before its ETag is checked, so a test can let
    another writer in between a read and a write."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], tuple[dict[str, Any], int]] = {}
        self.reads = 0
        self.writes = 0
        self.before_write: Callable[[], None] = lambda: None
        self.fail_reads = False

    def get_entity(self, partition_key: str, row_key: str) -> TableEntity:
        self.reads += 1
        if self.fail_reads:
            raise ServiceRequestError("storage is unreachable")
        try:
            fields, version = self.rows[(partition_key, row_key)]
        except KeyError:
            raise ResourceNotFoundError("no such entity") from None
        entity = TableEntity(fields)
        entity._metadata = {"etag": str(version)}
        return entity

    def create_entity(self, entity: dict[str, Any]) -> None:
        self.writes += 1
        self.before_write()
        key = (entity["PartitionKey"], entity["RowKey"])
        if key in self.rows:
            raise ResourceExistsError("the entity already exists")
        self.rows[key] = (dict(entity), 1)

    def update_entity(self, entity: dict[str, Any], **options: Any) -> None:
        self.writes += 1
        self.before_write()
        key = (entity["PartitionKey"], entity["RowKey"])
        _, version = self.rows[key]
        if options["etag"] != str(version):
            raise ResourceModifiedError("the ETag does not match")
        self.rows[key] = (dict(entity), version + 1)

    def used(self, row: str = ROW) -> int:
        return int(self.rows[(PARTITION, row)][0]["Used"])

    def set_used(self, used: int, row: str = ROW) -> None:
        _, version = self.rows.get((PARTITION, row), ({}, 0))
        fields = {"PartitionKey": PARTITION, "RowKey": row, "Used": used}
        self.rows[(PARTITION, row)] = (fields, version + 1)


def daily_cap(table: FakeTable, maximum: int, **options: Any) -> DailyCap:
    return DailyCap(table, PARTITION, maximum, clock=lambda: NOON, **options)  # type: ignore[arg-type]


def test_reservations_add_up_in_todays_row() -> None:
    table = FakeTable()
    cap = daily_cap(table, 100)

    assert cap.reserve(30) == 30
    assert cap.reserve(70) == 100
    assert table.used() == 100


def test_a_reservation_past_the_cap_is_refused_and_not_counted() -> None:
    table = FakeTable()
    cap = daily_cap(table, 100)
    cap.reserve(90)

    with pytest.raises(RequestError) as refused:
        cap.reserve(11)

    assert refused.value.status == 429
    assert refused.value.code == "DailyCapExceeded"
    assert "only 10 more may be deleted today" in str(refused.value)
    # Noon UTC: the allowance renews in twelve hours.
    assert refused.value.retry_after_s == 12 * 3600
    assert table.used() == 90


def test_a_new_utc_day_starts_a_new_count() -> None:
    table = FakeTable()
    table.set_used(100, row="cap-20261203")
    cap = daily_cap(table, 100)

    assert cap.reserve(100) == 100
    assert table.used("cap-20261203") == 100


def test_losing_the_row_to_another_writer_rereads_it_and_backs_off() -> None:
    table = FakeTable()
    table.set_used(10)
    naps: list[float] = []
    foreign_writes = iter([40, 45])

    def another_process_writes_first() -> None:
        used = next(foreign_writes, None)
        if used is not None:
            table.set_used(used)

    table.before_write = another_process_writes_first
    cap = daily_cap(table, 100, sleep=naps.append)

    assert cap.reserve(5) == 50
    assert table.used() == 50
    assert len(naps) == 2
    assert all(0 <= nap <= 1.0 for nap in naps)


def test_a_row_that_never_stops_changing_fails_as_a_storage_error() -> None:
    table = FakeTable()
    table.set_used(0)
    table.before_write = lambda: table.set_used(table.used())
    cap = daily_cap(table, 100, sleep=lambda seconds: None)

    with pytest.raises(StorageError, match="changed under each"):
        cap.reserve(5)
    assert table.used() == 0


def test_a_storage_failure_raises_storage_error_and_counts_nothing() -> None:
    table = FakeTable()
    table.set_used(7)
    table.fail_reads = True
    cap = daily_cap(table, 100)

    with pytest.raises(StorageError, match="daily cap"):
        cap.reserve(5)
    table.fail_reads = False
    assert table.used() == 7
    # The cap still works once storage is back: nothing was left waiting.
    assert cap.reserve(5) == 12


class GatedTable(FakeTable):
    """Holds the first write until told, so that other reservations queue
    behind it."""

    def __init__(self) -> None:
        super().__init__()
        self.first_write_started = threading.Event()
        self.release_first_write = threading.Event()
        self.before_write = self._hold_the_first_write

    def _hold_the_first_write(self) -> None:
        if not self.first_write_started.is_set():
            self.first_write_started.set()
            assert self.release_first_write.wait(10)


def reserve_in_threads(
    cap: DailyCap, counts: list[int], table: GatedTable
) -> list[int | Exception]:
    """One reservation of 1 first, held in its write while `counts` queue."""
    results: list[int | Exception] = [0] * (len(counts) + 1)

    def reserve(slot: int, count: int) -> None:
        try:
            results[slot] = cap.reserve(count)
        except (RequestError, StorageError) as exc:
            results[slot] = exc

    first = threading.Thread(target=reserve, args=(0, 1))
    first.start()
    assert table.first_write_started.wait(10)
    queued = [
        threading.Thread(target=reserve, args=(n + 1, count))
        for n, count in enumerate(counts)
    ]
    for thread in queued:
        thread.start()
    # Let every queued thread reach the wait before the first write ends.
    while _waiting(cap) < len(counts):
        threading.Event().wait(0.01)
    table.release_first_write.set()
    for thread in [first, *queued]:
        thread.join(10)
        assert not thread.is_alive()
    return results


def _waiting(cap: DailyCap) -> int:
    with cap._changed:
        return len(cap._queued)


def test_reservations_that_queue_during_a_write_are_committed_together() -> None:
    table = GatedTable()
    cap = daily_cap(table, 1_000)

    results = reserve_in_threads(cap, [5] * 50, table)

    assert table.used() == 1 + 50 * 5
    # The first write, then one for all fifty that waited behind it.
    assert table.writes == 2
    assert table.reads == 2
    # Each caller is told the running total its own reservation made.
    assert sorted(results) == [1, *range(6, 252, 5)]


def test_a_group_is_admitted_in_arrival_order_up_to_the_cap() -> None:
    table = GatedTable()
    cap = daily_cap(table, 20)

    results = reserve_in_threads(cap, [8, 8, 8, 3], table)

    assert results[:3] == [1, 9, 17]
    assert isinstance(results[3], RequestError)
    assert "only 0 more" in str(results[3])
    # A smaller request later in the group still fits where a larger did not.
    assert results[4] == 20
    assert table.used() == 20


def test_a_failed_group_write_fails_every_reservation_in_it() -> None:
    table = GatedTable()
    cap = daily_cap(table, 1_000)
    original = table.update_entity

    def failing_update(entity: dict[str, Any], **options: Any) -> None:
        raise ServiceRequestError("connection reset")

    table.update_entity = failing_update  # type: ignore[method-assign]
    results = reserve_in_threads(cap, [5, 5, 5], table)

    assert results[0] == 1
    assert all(isinstance(r, StorageError) for r in results[1:])
    assert table.used() == 1
    table.update_entity = original  # type: ignore[method-assign]
    assert cap.reserve(5) == 6
