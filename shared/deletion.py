"""Deleting a set of indicators and settling every ID.

BatchDelete is all-or-nothing in its answer: one missing ID fails the call
with 404, one indicator outside the app's device groups fails it with 403,
and Defender does not say whether the other IDs went. Settling therefore
never trusts a failed call either way:

- 404: a fresh listing of the tenant (List has its own budget and returns up
  to 10,000 indicators a call) tells which IDs are gone; those are reported
  `notFound`, the rest are sent again. If Defender did delete the found IDs of
  the failed call, they are gone too and are reported `notFound` rather than
  `deleted`, because no 204 confirmed them.
- 403: the batch is split in halves, ordered by device group so forbidden IDs
  cluster, until each forbidden ID stands alone.

Workers list the tenant before the batches of a large job (see
`shared.worker`), so IDs that no longer exist are settled without spending
BatchDelete calls on failures. A listing that cannot be had (an error, or no
List call allowed in time) is done without: a 404 batch is split instead.

When the shared budget allows no BatchDelete call within the client's
patience, or cannot be read, settling pauses (`SettlingPaused`) with what it
has settled so far; the rest of the batch is for a later attempt.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .cleanup import list_stably
from .defender import DefenderClient
from .errors import BatchDeleteError, DefenderError, StorageError
from .pacing import BudgetExhausted
from .report import BatchOutcome, Failure

__all__ = ["SettlingPaused", "TenantListing", "settle_batch"]

logger = logging.getLogger(__name__)

_NOT_FOUND = 404
_FORBIDDEN = 403

ProgressCallback = Callable[[BatchOutcome], None]
# Why a listing may be unavailable: Defender or storage failed, or the List
# budget allows no call within the client's patience.
_LISTING_FAILURES = (BatchDeleteError, BudgetExhausted)


class SettlingPaused(Exception):
    """No BatchDelete call can be made for now, so settling a batch stopped.

    The shared budget allowed none within the client's patience, or could not
    be read; the cause is chained. `settled` holds what the calls before
    settled; no other ID of the batch has a confirmed outcome (a call may have
    reached Defender before a retry could not be paced), so they are to be
    sent again later. `resume_after_s` is how many seconds remain until the
    budget allows a call, when that is known.
    """

    def __init__(
        self, settled: BatchOutcome, cause: BudgetExhausted | StorageError
    ) -> None:
        super().__init__(f"settling paused: {cause}")
        self.settled = settled
        self.resume_after_s = (
            cause.wait_s if isinstance(cause, BudgetExhausted) else None
        )


class TenantListing:
    """The IDs present in the tenant, re-read only when a caller needs newer.

    Concurrent callers that need a listing newer than the same moment share
    one List pass instead of each paying for their own.
    """

    def __init__(self, client: DefenderClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._taken_at = float("-inf")
        self._groups: dict[int, tuple[str, ...]] = {}

    def present(self, *, newer_than: float) -> dict[int, tuple[str, ...]]:
        """Present IDs with their device groups, listed after `newer_than`."""
        with self._lock:
            if self._taken_at < newer_than:
                started = time.time()
                # A plain $skip listing can skip rows while other batches
                # delete, and a skipped row would be settled as not found.
                self._groups = _list_groups(list_stably(self._client))
                self._taken_at = started
                logger.info("listed %d indicators in the tenant", len(self._groups))
            return self._groups


def settle_batch(
    client: DefenderClient, batch: Sequence[int], listing: TenantListing
) -> BatchOutcome:
    """Send one batch and repair 404 and 403 answers until every ID settles.

    Raises SettlingPaused when the shared budget stops the calls.
    """
    outcome = BatchOutcome()
    parts: list[list[int]] = [list(batch)] if batch else []
    while parts:
        part = parts.pop()
        sent_at = time.time()
        try:
            client.batch_delete(part)
        except (BudgetExhausted, StorageError) as exc:
            raise SettlingPaused(outcome, exc) from exc
        except DefenderError as exc:
            parts.extend(_repair(exc, part, sent_at, listing, outcome))
        except BatchDeleteError as exc:
            outcome.failed.extend(Failure.from_error(i, exc) for i in part)
        else:
            outcome.deleted.extend(part)
    return outcome


def _repair(
    error: DefenderError,
    part: list[int],
    sent_at: float,
    listing: TenantListing,
    outcome: BatchOutcome,
) -> list[list[int]]:
    """Record what a failed call settled; return the parts to send again."""
    if error.status == _NOT_FOUND:
        return _repair_not_found(error, part, sent_at, listing, outcome)
    if error.status == _FORBIDDEN:
        if len(part) == 1:
            outcome.forbidden.append(Failure.from_error(part[0], error))
            return []
        return _halves(part, _groups_or_empty(listing))
    outcome.failed.extend(Failure.from_error(i, error) for i in part)
    return []


def _repair_not_found(
    error: DefenderError,
    part: list[int],
    sent_at: float,
    listing: TenantListing,
    outcome: BatchOutcome,
) -> list[list[int]]:
    if len(part) == 1:
        outcome.not_found.append(part[0])
        return []
    try:
        present = listing.present(newer_than=sent_at)
    except _LISTING_FAILURES as exc:
        logger.warning("listing for a 404 batch failed, splitting instead: %s", exc)
        return _halves(part, {})
    gone = [i for i in part if i not in present]
    still_there = [i for i in part if i in present]
    outcome.not_found.extend(gone)
    if not gone:
        # The listing disagrees with the 404 (it may lag): split and let
        # Defender's own answers settle the IDs.
        return _halves(part, present)
    logger.info(
        "404 batch of %d: %d gone, %d sent again (target=%s)",
        len(part),
        len(gone),
        len(still_there),
        error.target,
    )
    return [still_there] if still_there else []


def _halves(part: list[int], groups: dict[int, tuple[str, ...]]) -> list[list[int]]:
    ordered = sorted(part, key=lambda i: (groups.get(i, ()), i))
    middle = len(ordered) // 2
    return [ordered[:middle], ordered[middle:]]


def _groups_or_empty(listing: TenantListing) -> dict[int, tuple[str, ...]]:
    try:
        return listing.present(newer_than=float("-inf"))
    except _LISTING_FAILURES:
        return {}


def _list_groups(rows: Iterable[dict[str, Any]]) -> dict[int, tuple[str, ...]]:
    groups: dict[int, tuple[str, ...]] = {}
    for row in rows:
        try:
            indicator_id = int(row["id"])
        except (KeyError, TypeError, ValueError):
            continue
        groups[indicator_id] = tuple(sorted(row.get("rbacGroupIds") or ()))
    return groups
