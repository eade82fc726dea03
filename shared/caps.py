"""Safety caps: how many indicators one request, and one day, may delete.

A leaked function key must not be able to empty a tenant. Each request is
checked against `MAX_IDS_PER_REQUEST`; every job also reserves its IDs from
the tenant's daily allowance (`MAX_DELETES_PER_DAY`, UTC days, shared by all
callers and the scheduled cleanup) before it is stored. The counter is an
entity updated with its ETag, like the rate budget.
"""

from __future__ import annotations

import datetime as dt
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
    """The tenant's running count of IDs accepted for deletion today."""

    def __init__(
        self,
        table: TableClient,
        partition: str,
        maximum: int,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table
        self._partition = partition
        self._maximum = maximum
        self._clock = clock

    def reserve(self, count: int) -> int:
        """Add `count` to today's total; raises RequestError (429) past the cap.

        Returns the new total.
        """
        row_key = _DAY_PREFIX + self._day()
        while True:
            used, etag = self._read(row_key)
            total = used + count
            if total > self._maximum:
                raise RequestError(
                    f"this request would delete {count} indicators, but only "
                    f"{max(0, self._maximum - used)} more may be deleted today "
                    f"(app setting MAX_DELETES_PER_DAY = {self._maximum}, counted "
                    "per UTC day across all callers). Retry tomorrow, or raise "
                    "the setting if this is intended",
                    status=429,
                    code="DailyCapExceeded",
                    retry_after_s=self._seconds_to_midnight(),
                )
            if self._write(row_key, total, etag):
                return total

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
