"""A `RateBudget` kept in Table Storage, shared by every instance and trigger.

One entity per tenant and API holds the recent calls (a random 64-bit key and
the time of each, packed as binary to stay far below the 64 KiB property
limit at 1,500 calls an hour; a call still in flight is stored with its
reservation time negated, see `shared.pacing`) and the time until which
Defender asked every caller to wait. Updates use the entity's ETag; a 412
after the SDK's own retry may mean the first attempt was applied, so it is
re-read and checked for our own key before being treated as a lost race.
"""

from __future__ import annotations

import logging
import secrets
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from .errors import StorageError
from .pacing import (
    MAX_IN_FLIGHT_S,
    BudgetExhausted,
    Slot,
    effective_times,
    wait_needed,
)
from .settings import RateLimit

__all__ = ["TableBudget"]

logger = logging.getLogger(__name__)

_RECORD = struct.Struct("<qd")
# Sleep at most this long before looking again: other instances may give back
# unsent slots, and a long sleep would hide that.
MAX_POLL_S = 5.0


class TableBudget:
    """Sliding-window budget in a shared table, one entity per API."""

    def __init__(
        self,
        table: TableClient,
        partition: str,
        limits: dict[str, Sequence[RateLimit]],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table = table
        self._partition = partition
        self._limits = {api: tuple(rules) for api, rules in limits.items()}
        self._clock = clock
        self._sleep = sleep

    def acquire(self, api: str, *, timeout_s: float | None = None) -> Slot:
        deadline = None if timeout_s is None else self._clock() + timeout_s
        key = secrets.randbits(63)
        while True:
            state = self._read(api)
            now = self._clock()
            wait = self._wait(api, state, now)
            if wait <= 0:
                state.calls[key] = -now
                if self._write(state, _holds(key, -now)):
                    return Slot(api, key, self._release)
                continue
            if deadline is not None and now + wait > deadline:
                raise BudgetExhausted(api, wait)
            self._sleep(min(wait, MAX_POLL_S))

    def throttled(self, api: str, retry_after_s: float) -> None:
        until = self._clock() + retry_after_s
        while True:
            state = self._read(api)
            if state.blocked_until >= until:
                return
            state.blocked_until = until
            if self._write(state, lambda s: s.blocked_until >= until):
                logger.warning("every caller of %s waits %.1fs", api, retry_after_s)
                return

    def wait_s(self, api: str) -> float:
        return max(0.0, self._wait(api, self._read(api), self._clock()))

    def throttled_for_s(self, api: str) -> float:
        return max(0.0, self._read(api).blocked_until - self._clock())

    def _release(self, slot: Slot, sent: bool) -> None:
        while True:
            state = self._read(slot.api)
            if sent:
                answered = self._clock()
                state.calls[slot.key] = answered
                done = self._write(state, _holds(slot.key, answered))
            else:
                state.calls.pop(slot.key, None)
                done = self._write(state, lambda s: slot.key not in s.calls)
            if done:
                return

    def _wait(self, api: str, state: _State, now: float) -> float:
        limits = self._limits[api]
        longest = max(limit.window_s for limit in limits)
        state.calls = {
            k: t
            for k, t in state.calls.items()
            if t > now - longest or -t > now - longest - MAX_IN_FLIGHT_S
        }
        answered = [t for t in state.calls.values() if t > 0]
        in_flight = [-t for t in state.calls.values() if t < 0]
        times = effective_times(answered, in_flight, now)
        wait = wait_needed(times, limits, now)
        return max(wait, state.blocked_until - now)

    def _read(self, api: str) -> _State:
        row_key = f"budget-{api}"
        try:
            entity = self._table.get_entity(self._partition, row_key)
        except ResourceNotFoundError:
            return self._create(api, row_key)
        except AzureError as exc:
            raise StorageError(f"could not read the {api} budget") from exc
        return _State.from_entity(api, entity)

    def _create(self, api: str, row_key: str) -> _State:
        entity = {"PartitionKey": self._partition, "RowKey": row_key}
        try:
            self._table.create_entity({**entity, "Calls": b"", "BlockedUntil": 0.0})
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise StorageError(f"could not create the {api} budget") from exc
        return self._read(api)

    def _write(self, state: _State, applied: Callable[[_State], bool]) -> bool:
        """Write if unchanged; True when our change is in the table."""
        try:
            self._table.update_entity(
                state.to_entity(self._partition),
                mode=UpdateMode.REPLACE,
                etag=state.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError:
            # Possibly our own write, applied before a retried request.
            return applied(self._read(state.api))
        except AzureError as exc:
            raise StorageError(f"could not update the {state.api} budget") from exc
        return True


def _holds(key: int, at: float) -> Callable[[_State], bool]:
    """A check that the table holds our call `key` at time `at`."""
    return lambda state: state.calls.get(key) == at


class _State:
    """One API's budget entity, decoded."""

    def __init__(
        self, api: str, calls: dict[int, float], blocked_until: float, etag: str
    ) -> None:
        self.api = api
        self.calls = calls
        self.blocked_until = blocked_until
        self.etag = etag

    @classmethod
    def from_entity(cls, api: str, entity: Any) -> _State:
        raw = bytes(entity.get("Calls") or b"")
        calls = dict(_RECORD.iter_unpack(raw[: len(raw) - len(raw) % _RECORD.size]))
        blocked = float(entity.get("BlockedUntil") or 0.0)
        return cls(api, calls, blocked, entity.metadata["etag"])

    def to_entity(self, partition: str) -> dict[str, Any]:
        packed = b"".join(_RECORD.pack(k, t) for k, t in self.calls.items())
        return {
            "PartitionKey": partition,
            "RowKey": f"budget-{self.api}",
            "Calls": packed,
            "BlockedUntil": float(self.blocked_until),
        }
