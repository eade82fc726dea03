"""Workers: pack pending IDs from any job into full batches and settle them.

Several jobs' pieces share one BatchDelete call when they are waiting, so many
small requests do not each spend one of the 30 calls a minute. A batch smaller
than 500 IDs is sent once arrivals go quiet (no new piece for `linger_s`) or
its oldest piece has waited `max_linger_s`, whichever comes first: a lone
request waits only the quiet period, while a burst of small requests fills
batches instead of spending a call each. Outcomes are split back to the
pieces they came from.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from .defender import DefenderClient
from .deletion import TenantListing, settle_batch
from .errors import BatchDeleteError, StorageError
from .ids import MAX_IDS_PER_BATCH
from .jobs import JobStatus, JobStore, Piece
from .outcomes import restrict
from .pacing import RateBudget
from .report import BatchOutcome, Failure

__all__ = [
    "DEFAULT_LINGER_S",
    "DEFAULT_MAX_LINGER_S",
    "LEASE_S",
    "MAX_PIECE_ATTEMPTS",
    "Worker",
]

logger = logging.getLogger(__name__)

LEASE_S = 120.0
DEFAULT_LINGER_S = 1.0
DEFAULT_MAX_LINGER_S = 10.0
MAX_PIECE_ATTEMPTS = 5
RETRY_BASE_S = 2.0
RETRY_MAX_S = 60.0
IDLE_POLL_S = 0.25
# Failures that a later attempt can cure: no answer, server trouble, expired
# credentials, throttling past our patience.
_FINAL_STATUSES = range(400, 500)
_TRANSIENT_4XX = (401, 408, 429)


class Worker:
    """Drains pending pieces of one tenant's jobs."""

    def __init__(
        self,
        store: JobStore,
        client: DefenderClient,
        budget: RateBudget,
        *,
        concurrency: int = 4,
        linger_s: float = DEFAULT_LINGER_S,
        max_linger_s: float = DEFAULT_MAX_LINGER_S,
        lease_s: float = LEASE_S,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._client = client
        self._budget = budget
        self._concurrency = concurrency
        self._linger_s = linger_s
        self._max_linger_s = max(linger_s, max_linger_s)
        self._lease_s = lease_s
        self._clock = clock
        self._sleep = sleep
        self._listing = TenantListing(client)
        # Told the ID of each job this worker finishes, to wake its waiters.
        self.on_finished: Callable[[str], None] | None = None

    def drain(
        self,
        *,
        deadline: float,
        done: Callable[[], bool] | None = None,
    ) -> int:
        """Settle pending work until none is left, `done()` or the deadline.

        Returns how many batches this call sent.
        """
        stop = threading.Event()
        sent = [0]
        lock = threading.Lock()

        def loop(lane: int) -> None:
            while not stop.is_set() and self._clock() < deadline:
                if done is not None and done():
                    break
                outcome = self._step(deadline, lane)
                if outcome is None:
                    break
                if outcome:
                    with lock:
                        sent[0] += 1
            stop.set()

        with ThreadPoolExecutor(self._concurrency, "drain") as pool:
            for future in [pool.submit(loop, n) for n in range(self._concurrency)]:
                future.result()
        return sent[0]

    def _step(self, deadline: float, lane: int = 0) -> bool | None:
        """One pack: True when sent, False to look again, None when idle.

        Concurrent lanes of one drain start from different packs among the
        oldest, so they do not all race for the same pieces.
        """
        pieces = self._store.claimable()
        if not pieces:
            return None
        packs = _packs(pieces, self._concurrency)
        pack = packs[lane % len(packs)]
        size = sum(len(p.remaining) for p in pack)
        wait = self._linger_left(pack, size, pieces)
        if wait > 0:
            self._sleep(min(wait, IDLE_POLL_S, max(0.0, deadline - self._clock())))
            return False
        claim = uuid.uuid4().hex
        claimed = self._store.claim(pack, claim, self._lease_s)
        if claimed is None:
            return False
        self._mark_running(claimed)
        self._settle(claimed, claim)
        return True

    def _linger_left(
        self, pack: Sequence[Piece], size: int, waiting: Sequence[Piece]
    ) -> float:
        """Seconds to hold a partial batch: until quiet, or the oldest is due."""
        if size >= MAX_IDS_PER_BATCH:
            return 0.0
        now = self._clock()
        newest = max(p.created_ms for p in waiting) / 1000
        oldest = min(p.created_ms for p in pack) / 1000
        quiet_left = newest + self._linger_s - now
        if quiet_left <= 0:
            return 0.0
        return min(quiet_left, oldest + self._max_linger_s - now)

    def _settle(self, pieces: list[Piece], claim: str) -> None:
        ids = [i for p in pieces for i in p.remaining]
        outcome = self._settle_absent(pieces, ids)
        absent = set(outcome.not_found)
        ids = [i for i in ids if i not in absent]
        if ids:
            try:
                outcome.merge(settle_batch(self._client, ids, self._listing))
            except BatchDeleteError as exc:
                outcome.failed.extend(Failure.from_error(i, exc) for i in ids)
        retry, retry_at, last_error = self._hold_back_transient(outcome, pieces)
        settled = {p.row_key: restrict(outcome, p.remaining) for p in pieces}
        for part in settled.values():
            part.failed = [f for f in part.failed if f.id not in retry]
        self._record(pieces, claim, settled, retry_at, last_error)
        self._finish_jobs({p.job_id for p in pieces})

    def _settle_absent(self, pieces: Sequence[Piece], ids: list[int]) -> BatchOutcome:
        """Settle IDs of large jobs that a listing shows are gone.

        A job of many batches starts with one listing, so IDs that no longer
        exist cost no failed BatchDelete calls. Small jobs skip it: a listing
        of a full tenant costs more than the one call it might save.
        """
        if all(p.job_size <= MAX_IDS_PER_BATCH for p in pieces):
            return BatchOutcome()
        newest = max(p.created_ms for p in pieces) / 1000
        try:
            present = self._listing.present(newer_than=newest)
        except BatchDeleteError as exc:
            logger.warning("could not list the tenant first: %s", exc)
            return BatchOutcome()
        return BatchOutcome(not_found=[i for i in ids if i not in present])

    def _hold_back_transient(
        self, outcome: BatchOutcome, pieces: Sequence[Piece]
    ) -> tuple[set[int], float | None, str | None]:
        """IDs whose failure a later attempt may cure, when, and why."""
        attempts = {i: p.attempts for p in pieces for i in p.remaining}
        transient = [
            f
            for f in outcome.failed
            if _transient(f) and attempts.get(f.id, 0) + 1 < MAX_PIECE_ATTEMPTS
        ]
        if not transient:
            return set(), None, None
        tries = max(attempts.get(f.id, 0) for f in transient)
        delay = min(RETRY_MAX_S, RETRY_BASE_S * 2**tries)
        reason = transient[0].message
        logger.warning(
            "%d IDs will be sent again in %.0fs: %s", len(transient), delay, reason
        )
        return {f.id for f in transient}, self._clock() + delay, reason

    def _record(
        self,
        pieces: list[Piece],
        claim: str,
        settled: dict[str, BatchOutcome],
        retry_at: float | None,
        last_error: str | None,
    ) -> None:
        delay = 0.5
        while True:
            try:
                self._store.record(pieces, claim, settled, retry_at, last_error)
                return
            except StorageError as exc:
                # Defender's answer is only in memory now: keep trying while
                # the lease lasts; after that another worker resends the IDs.
                if self._clock() + delay > pieces[0].lease_until:
                    logger.error("could not record a batch's outcome: %s", exc)
                    return
                logger.warning("storage unavailable, retrying: %s", exc)
                self._sleep(delay)
                delay = min(delay * 2, 10.0)

    def _mark_running(self, pieces: Sequence[Piece]) -> None:
        for job_id in {p.job_id for p in pieces}:
            job = self._store.get(job_id)
            if job is not None and job.status == JobStatus.PENDING:
                self._store.set_status(job, JobStatus.RUNNING)

    def finish_if_settled(self, job_id: str) -> None:
        """Finish a job whose pieces are all settled but whose status is not
        (the worker that recorded its last piece died before setting it)."""
        self._finish_jobs({job_id})

    def _finish_jobs(self, job_ids: set[str]) -> None:
        for job_id in job_ids:
            job = self._store.get(job_id)
            if job is None or job.finished:
                continue
            if self._store.has_unfinished_pieces(job):
                continue
            pieces = self._store.pieces_of(job)
            total = BatchOutcome()
            for piece in pieces:
                total.merge(piece.outcome)
            status = JobStatus.FAILED if total.failed else JobStatus.COMPLETED
            self._store.set_status(job, status)
            if self.on_finished is not None:
                self.on_finished(job_id)
            logger.info(
                "job %s: %s (deleted=%d, notFound=%d, forbidden=%d, failed=%d)",
                job_id,
                status.value,
                len(total.deleted),
                len(total.not_found),
                len(total.forbidden),
                len(total.failed),
            )


def _packs(pieces: Sequence[Piece], most: int) -> list[list[Piece]]:
    """Up to `most` batches of the oldest pieces, each filled first fit."""
    packs: list[list[Piece]] = []
    left = list(pieces)
    while left and len(packs) < most:
        pack: list[Piece] = []
        size = 0
        for piece in left:
            if size + len(piece.remaining) <= MAX_IDS_PER_BATCH:
                pack.append(piece)
                size += len(piece.remaining)
            if size == MAX_IDS_PER_BATCH:
                break
        packs.append(pack)
        taken = {p.row_key for p in pack}
        left = [p for p in left if p.row_key not in taken]
    return packs


def _transient(failure: Failure) -> bool:
    if failure.status is None:
        return True
    return failure.status >= 500 or failure.status in _TRANSIENT_4XX
