"""Safety caps: how many indicators one request, and one day, may delete.

A leaked function key must not be able to empty a tenant. Each request is
checked against `MAX_IDS_PER_REQUEST`; every job also reserves its IDs from
the tenant's daily allowance (`MAX_DELETES_PER_DAY`, UTC days, shared by all
callers and the scheduled cleanup) before it is stored. The counter is an
entity updated with its ETag, like the rate budget.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections.abc import Callable

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from .errors import RequestError, StorageError

__all__ = ["DailyCap", "check_request_cap"]

_DAY_PREFIX = "cap-"
# Backoff after losing the row to another process: jittered, doubling from
# the base up to the ceiling.
_BASE_BACKOFF_S = 0.02
_MAX_BACKOFF_S = 1.0
# Past this many lost races in a row the reservation fails as a storage error
# (503, retry later) rather than holding the request indefinitely.
_MAX_ATTEMPTS = 30


def check_request_cap(count: int, maximum: int) -> None:
    """Raise a 400 RequestError when one request asks for too many IDs."""
    if count > maximum:
        raise RequestError(
            f"this request would delete {count} indicators; the most one request "
            f"may delete is {maximum} (app setting MAX_IDS_PER_REQUEST). Split "
            "the request, or raise the setting if this is intended",
            status=400,
            code="RequestCapExceeded",
        )


class DailyCap:
    """The tenant's running count of IDs accepted for deletion today.

    One instance serves every thread of a process. Reservations that arrive
    while another is being written are committed together by the next
    writer (group commit): a burst of small requests then costs one read and
    one conditional write per group, not a round of ETag conflicts per
    request. Other processes contend through the row's ETag, and back off
    with jitter when they lose.
    """

    def __init__(
        self,
        table: TableClient,
        partition: str,
        maximum: int,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table = table
        self._partition = partition
        self._maximum = maximum
        self._clock = clock
        self._sleep = sleep
        self._changed = threading.Condition()
        self._queued: list[_Reservation] = []
        self._writing = False

    def reserve(self, count: int) -> int:
        """Add `count` to today's total; raises RequestError (429) past the cap.

        Returns the new total. Raises StorageError when the count could not
        be read or written; the reservation then did not happen.
        """
        mine = _Reservation(count)
        with self._changed:
            self._queued.append(mine)
            while self._writing and not mine.settled:
                self._changed.wait()
            if mine.settled:
                return mine.outcome()
            # No one is writing: this thread commits everything queued,
            # its own reservation included.
            self._writing = True
            group, self._queued = self._queued, []
        try:
            self._commit(group)
        except BaseException as exc:
            # Settle every reservation the failed write carried, or their
            # callers would wait for a commit that no one will make.
            for reservation in group:
                reservation.fail(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            with self._changed:
                self._writing = False
                self._changed.notify_all()
        return mine.outcome()

    def _commit(self, group: list[_Reservation]) -> None:
        """Admit `group` in arrival order up to the cap and record the total."""
        row_key = _DAY_PREFIX + self._day()
        for attempt in range(_MAX_ATTEMPTS):
            used, etag = self._read(row_key)
            total = used
            admitted = []
            for reservation in group:
                if total + reservation.count <= self._maximum:
                    total += reservation.count
                    admitted.append((reservation, total))
            if not admitted or self._write(row_key, total, etag):
                break
            # Another process changed the row between the read and the write.
            self._sleep(
                random.uniform(0, min(_MAX_BACKOFF_S, _BASE_BACKOFF_S * 2**attempt))
            )
        else:
            raise StorageError(
                f"the daily cap changed under each of {_MAX_ATTEMPTS} attempts "
                "to update it"
            )
        for reservation, running in admitted:
            reservation.grant(running)
        for reservation in group:
            if not reservation.settled:
                reservation.refuse(
                    self._refusal(reservation.count, self._maximum - total)
                )

    def _refusal(self, count: int, left: int) -> RequestError:
        return RequestError(
            f"this request would delete {count} indicators, but only "
            f"{max(0, left)} more may be deleted today "
            f"(app setting MAX_DELETES_PER_DAY = {self._maximum}, counted "
            "per UTC day across all callers). Retry tomorrow, or raise "
            "the setting if this is intended",
            status=429,
            code="DailyCapExceeded",
            retry_after_s=self._seconds_to_midnight(),
        )

    def _seconds_to_midnight(self) -> int:
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        midnight = (now + dt.timedelta(days=1)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        return max(1, int((midnight - now).total_seconds()))

    def _day(self) -> str:
        return dt.datetime.fromtimestamp(self._clock(), dt.UTC).strftime("%Y%m%d")

    def _read(self, row_key: str) -> tuple[int, str | None]:
        try:
            entity = self._table.get_entity(self._partition, row_key)
        except ResourceNotFoundError:
            return 0, None
        except AzureError as exc:
            raise StorageError("could not read the daily cap") from exc
        return int(entity.get("Used") or 0), entity.metadata["etag"]

    def _write(self, row_key: str, total: int, etag: str | None) -> bool:
        entity = {"PartitionKey": self._partition, "RowKey": row_key, "Used": total}
        try:
            if etag is None:
                self._table.create_entity(entity)
            else:
                self._table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError):
            # Lost a race (or our own retried write went in first, in which
            # case re-reading counts it once more: the cap errs on the safe
            # side rather than letting a day's total slip past it).
            return False
        except AzureError as exc:
            raise StorageError("could not update the daily cap") from exc
        return True


class _Reservation:
    """One caller's request for `count` IDs, settled by whichever thread
    commits the group it is in."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.settled = False
        self._total = 0
        self._error: BaseException | None = None

    def grant(self, total: int) -> None:
        self._total, self.settled = total, True

    def refuse(self, error: RequestError) -> None:
        self._error, self.settled = error, True

    def fail(self, cause: BaseException) -> None:
        if not self.settled:
            self._error, self.settled = cause, True

    def outcome(self) -> int:
        """The day's total once this reservation was counted; raises the
        refusal or storage failure that settled it instead."""
        error = self._error
        if isinstance(error, RequestError):
            raise error
        if error is not None:
            # A failure is shared by the whole group: each caller gets its
            # own exception, chained to the one that happened.
            raise StorageError(
                f"could not reserve from the daily cap: {error}"
            ) from error
        return self._total
