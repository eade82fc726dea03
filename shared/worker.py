"""Workers: pack pending IDs from any job into full batches and settle them.

Several jobs' pieces share one BatchDelete call when they are waiting, so many
small requests do not each spend one of the 30 calls a minute. A batch smaller
than 500 IDs is sent once arrivals go quiet (no new piece for `linger_s`, or
for twice the stream's own longest pause) or its oldest piece has waited
`max_linger_s` since this worker first saw it, whichever comes first: a lone
request waits only the quiet period, while a burst of small requests fills
batches instead of spending a call each. A batch is chosen only once the
shared budget has room for its call, so what arrives meanwhile joins it.
An ID that several pieces hold is sent once, and outcomes are split back to
the pieces they came from.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from .defender import API_BATCH_DELETE, DefenderClient
from .deletion import SettlingPaused, TenantListing, settle_batch
from .errors import BatchDeleteError, StorageError
from .ids import MAX_IDS_PER_BATCH
from .jobs import MAX_PIECES_PER_PACK, JobStatus, JobStore, Piece
from .outcomes import restrict
from .pacing import BudgetExhausted, RateBudget
from .report import BatchOutcome, Failure
from .settings import DEFAULT_CONCURRENCY, DEFAULT_LINGER_S, DEFAULT_MAX_LINGER_S

__all__ = [
    "LEASE_S",
    "MAX_PIECE_ATTEMPTS",
    "Worker",
]

logger = logging.getLogger(__name__)

LEASE_S = 120.0
MAX_PIECE_ATTEMPTS = 5
RETRY_BASE_S = 2.0
RETRY_MAX_S = 60.0
# The longest a lane sleeps before looking again while a pack lingers or the
# budget is spent: other workers may have taken the pieces meanwhile.
MAX_WAIT_STEP_S = 5.0
# After a storage failure a lane waits, doubling from the first wait to the
# longest while failures last, before it looks for work again.
STORAGE_RETRY_BASE_S = 0.5
STORAGE_RETRY_MAX_S = 10.0
# How long a worker remembers when it first saw a piece (see `_Arrivals`).
_KEEP_SEEN_S = 60.0
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
        concurrency: int = DEFAULT_CONCURRENCY,
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
        self._choosing = threading.Lock()
        self._arrivals = _Arrivals(keep_s=max(_KEEP_SEEN_S, 2 * self._max_linger_s))
        # Jobs whose pieces are all done but whose final status could not be
        # written: tried again at the next step, as nothing else would finish
        # them until someone polls them.
        self._unfinished: set[str] = set()
        self._unfinished_lock = threading.Lock()
        # Told the ID of each job this worker finishes, to wake its waiters.
        self.on_finished: Callable[[str], None] | None = None

    def drain(
        self,
        *,
        deadline: float,
        done: Callable[[], bool] | None = None,
    ) -> int:
        """Settle pending work until none is left, `done()` or the deadline.

        A storage failure does not end it: the lane that met it waits (a
        jittered backoff, never past the deadline) and looks again, so a
        storage blip delays the work instead of ending the worker, the timer
        tick or the request doing it. Returns how many batches this call sent.
        """
        stop = threading.Event()
        sent = [0]
        lock = threading.Lock()

        def loop() -> None:
            backoff = _Backoff(STORAGE_RETRY_BASE_S, STORAGE_RETRY_MAX_S)
            while not stop.is_set() and self._clock() < deadline:
                try:
                    if done is not None and done():
                        break
                    outcome = self._step(deadline)
                except StorageError as exc:
                    self._wait_for_storage(exc, backoff.next(), deadline)
                    continue
                backoff.reset()
                if outcome is None:
                    break
                if outcome:
                    with lock:
                        sent[0] += 1
            stop.set()

        with ThreadPoolExecutor(self._concurrency, "drain") as pool:
            for future in [pool.submit(loop) for _ in range(self._concurrency)]:
                future.result()
        return sent[0]

    def _wait_for_storage(
        self, error: StorageError, delay: float, deadline: float
    ) -> None:
        """Sleep `delay` after a storage failure, but not past the deadline."""
        delay = min(delay, max(0.0, deadline - self._clock()))
        logger.warning(
            "state storage failed; looking for work again in %.1fs: %s", delay, error
        )
        self._sleep(delay)

    def _step(self, deadline: float) -> bool | None:
        """One pack: True when sent, False to look again, None when idle or
        when the budget stopped the sending for longer than we wait.

        The lanes of a worker choose and claim packs one at a time, so they
        never race each other for the same pieces. A pack is claimed only
        once it is due and the budget has room for its call: pieces that
        arrive while a call must wait still join the pack, and no lease is
        held while waiting.
        """
        self._finish_remembered()
        claim = uuid.uuid4().hex
        claimed = None
        with self._choosing:
            pieces = self._store.claimable()
            if not pieces:
                return None
            pack = _packs(pieces, 1)[0]
            size = sum(len(p.remaining) for p in pack)
            wait = self._linger_left(pack, size, pieces)
            if wait <= 0:
                wait = self._budget.wait_s(API_BATCH_DELETE)
            if wait <= 0:
                claimed = self._claim(pack, claim)
        if wait > 0:
            self._sleep(min(wait, MAX_WAIT_STEP_S, max(0.0, deadline - self._clock())))
            return False
        if claimed is None:
            return False
        self._mark_running(claimed)
        return True if self._settle(claimed, claim) else None

    def _claim(self, pack: list[Piece], claim: str) -> list[Piece] | None:
        """Claim `pack`; None when another worker won one of its pieces.

        When storage fails, whether the claim went in is unknown: it is given
        back if it did (or else its pieces wait out the lease), and the
        StorageError is raised.
        """
        try:
            return self._store.claim(pack, claim, self._lease_s)
        except StorageError:
            self._release(pack, claim)
            raise

    def _release(self, pieces: Sequence[Piece], claim: str) -> None:
        try:
            self._store.release(pieces, claim)
        except StorageError as exc:
            logger.warning(
                "could not give back %d pieces; they wait for their lease: %s",
                len(pieces),
                exc,
            )

    def _linger_left(
        self, pack: Sequence[Piece], size: int, waiting: Sequence[Piece]
    ) -> float:
        """Seconds to hold a partial batch: until quiet, or the oldest is due.

        Arrivals are quiet after a pause of `linger_s`, or of twice the
        longest pause between the waiting pieces' own arrivals if that is
        longer: a stream that arrives in bursts is not mistaken for one that
        has ended. Both are measured from when this worker first saw the
        pieces (see `_Arrivals`).
        """
        now = self._clock()
        seen = self._arrivals.first_seen(waiting, now)
        if size >= MAX_IDS_PER_BATCH or len(pack) >= MAX_PIECES_PER_PACK:
            return 0.0
        arrivals = sorted(seen.values())
        pauses = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
        quiet_s = max(self._linger_s, 2 * max(pauses, default=0.0))
        quiet_left = arrivals[-1] + quiet_s - now
        if quiet_left <= 0:
            return 0.0
        due = min(seen[p.row_key] for p in pack) + self._max_linger_s
        return min(quiet_left, due - now)

    def _settle(self, pieces: list[Piece], claim: str) -> bool:
        """Send the claimed pieces' IDs and record what was settled.

        Returns False when the budget allows no call for longer than the
        client waits: the IDs not sent go back to pending, without counting
        an attempt, until it does.
        """
        # Jobs packed together may ask for the same ID: it is sent once, and
        # its outcome is split back to every piece that holds it.
        ids = list(dict.fromkeys(i for p in pieces for i in p.remaining))
        outcome = self._settle_absent(pieces, ids)
        absent = set(outcome.not_found)
        ids = [i for i in ids if i not in absent]
        paused = None
        if ids:
            try:
                outcome.merge(settle_batch(self._client, ids, self._listing))
            except SettlingPaused as exc:
                outcome.merge(exc.settled)
                paused = exc
            except BatchDeleteError as exc:
                outcome.failed.extend(Failure.from_error(i, exc) for i in ids)
        retry, retry_at, last_error = self._hold_back_transient(outcome, pieces)
        if paused is not None:
            retry_at, last_error = self._hold_back_paused(
                paused, outcome, ids, retry_at, last_error
            )
        settled = {p.row_key: restrict(outcome, p.remaining) for p in pieces}
        for part in settled.values():
            part.failed = [f for f in part.failed if f.id not in retry]
        count_attempt = paused is None or bool(retry)
        stored = self._record(
            pieces, claim, settled, retry_at, last_error, count_attempt=count_attempt
        )
        self._finish_recorded(pieces, stored)
        return paused is None or paused.resume_after_s is None

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
        except (BatchDeleteError, BudgetExhausted) as exc:
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

    def _hold_back_paused(
        self,
        paused: SettlingPaused,
        outcome: BatchOutcome,
        sent: Sequence[int],
        retry_at: float | None,
        last_error: str | None,
    ) -> tuple[float, str]:
        """When to send again the IDs a paused budget kept back, and why.

        They wait until the budget allows a call, or when that is unknown
        (its storage failed) as long as a first retry would.
        """
        delay = paused.resume_after_s
        if delay is None:
            delay = RETRY_BASE_S
        settled = set(outcome.settled_ids())
        held = sum(1 for i in sent if i not in settled)
        logger.warning("%d IDs will be sent again in %.0fs: %s", held, delay, paused)
        return max(retry_at or 0.0, self._clock() + delay), last_error or str(paused)

    def _record(
        self,
        pieces: list[Piece],
        claim: str,
        settled: dict[str, BatchOutcome],
        retry_at: float | None,
        last_error: str | None,
        *,
        count_attempt: bool = True,
    ) -> list[Piece] | None:
        """Store the batch's outcome; the pieces as stored, or None when
        they could not be (another worker will settle them).

        Defender's answers are only in memory until they are stored, and
        pieces given back unsent would otherwise wait out their lease, so
        the write is retried while the lease lasts. The work runs beside
        its caller (see `Service.work_on`), so no caller waits for this.
        """
        backoff = _Backoff(STORAGE_RETRY_BASE_S, STORAGE_RETRY_MAX_S)
        while True:
            try:
                return self._store.record(
                    pieces,
                    claim,
                    settled,
                    retry_at,
                    last_error,
                    count_attempt=count_attempt,
                )
            except StorageError as exc:
                delay = backoff.next()
                if self._clock() + delay > pieces[0].lease_until:
                    logger.error("could not record a batch's outcome: %s", exc)
                    return None
                logger.warning("storage unavailable, retrying: %s", exc)
                self._sleep(delay)

    def _mark_running(self, pieces: Sequence[Piece]) -> None:
        """Show the pieces' jobs as Running; a storage failure only leaves
        them Pending until they finish."""
        try:
            self._store.mark_running(dict.fromkeys(p.job_id for p in pieces))
        except StorageError as exc:
            logger.warning("could not mark jobs as running: %s", exc)

    def _finish_recorded(
        self, pieces: Sequence[Piece], stored: Sequence[Piece] | None
    ) -> None:
        """Finish the jobs of pieces just recorded, if they are all done.

        A storage failure here is not the batch's: its outcome is stored.
        The jobs are remembered and finished at this worker's next step.
        """
        whole = _whole_jobs(stored or [])
        try:
            self._finish_jobs({p.job_id for p in pieces} - whole.keys())
            self._finish_whole(whole)
        except StorageError as exc:
            logger.warning("could not finish jobs, trying again soon: %s", exc)
            with self._unfinished_lock:
                self._unfinished.update(p.job_id for p in pieces)

    def _finish_remembered(self) -> None:
        """Finish the jobs a storage failure left unfinished; raises
        StorageError, and then remembers them still."""
        with self._unfinished_lock:
            job_ids, self._unfinished = self._unfinished, set()
        try:
            self._finish_jobs(job_ids)
        except StorageError:
            with self._unfinished_lock:
                self._unfinished.update(job_ids)
            raise

    def finish_if_settled(self, job_id: str) -> None:
        """Finish a job whose pieces are all settled but whose status is not
        (the worker that recorded its last piece died before setting it)."""
        self._finish_jobs({job_id})

    def _finish_jobs(self, job_ids: set[str]) -> None:
        """Finish those of `job_ids` whose pieces are all done, reading each
        job and its pieces to find out."""
        for job_id in job_ids:
            job = self._store.get(job_id)
            if job is None or job.finished:
                continue
            if self._store.has_unfinished_pieces(job):
                continue
            total = BatchOutcome()
            for piece in self._store.pieces_of(job):
                total.merge(piece.outcome)
            status = _final_status(total)
            self._store.set_status(job, status)
            self._finished(job_id, status, total)

    def _finish_whole(self, whole: dict[str, Piece]) -> None:
        """Finish jobs of one piece that was just recorded done: their
        outcome is in hand, so nothing needs to be read."""
        if not whole:
            return
        statuses = {job_id: _final_status(p.outcome) for job_id, p in whole.items()}
        self._store.finish(statuses)
        for job_id, status in statuses.items():
            self._finished(job_id, status, whole[job_id].outcome)

    def _finished(self, job_id: str, status: JobStatus, total: BatchOutcome) -> None:
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


class _Arrivals:
    """When this worker first saw each waiting piece.

    Lingering is measured from when a piece became visible, not from the
    time stamped in it: under load a request's job is committed a while
    after its stamp, and measured by stamps a steady stream of requests
    would look quiet, or overdue, and be sent in half-empty batches. Pieces
    seen more than `keep_s` ago are forgotten; one still waiting by then is
    past any linger anyway.
    """

    def __init__(self, keep_s: float) -> None:
        self._keep_s = keep_s
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_seen(self, waiting: Sequence[Piece], now: float) -> dict[str, float]:
        """When each of `waiting` was first seen, by row key; those not
        seen before are seen `now`."""
        with self._lock:
            seen = {p.row_key: self._seen.setdefault(p.row_key, now) for p in waiting}
            cutoff = now - self._keep_s
            if min(self._seen.values(), default=now) < cutoff:
                self._seen = {k: t for k, t in self._seen.items() if t >= cutoff}
            return seen


class _Backoff:
    """Waits that double from `first_s` up to `most_s` while failures last,
    jittered so that lanes and instances which failed together do not all
    come back at the same moment."""

    def __init__(self, first_s: float, most_s: float) -> None:
        self._first_s = first_s
        self._most_s = most_s
        self._ceiling = first_s

    def next(self) -> float:
        """The wait after one more failure in a row."""
        ceiling = self._ceiling
        self._ceiling = min(self._most_s, ceiling * 2)
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._ceiling = self._first_s


def _packs(pieces: Sequence[Piece], most: int) -> list[list[Piece]]:
    """Up to `most` batches of the oldest pieces, each filled first fit.

    A pack is claimed in one table transaction, so it holds at most
    `MAX_PIECES_PER_PACK` pieces however few IDs they carry.
    """
    packs: list[list[Piece]] = []
    left = list(pieces)
    while left and len(packs) < most:
        pack: list[Piece] = []
        size = 0
        for piece in left:
            if size + len(piece.remaining) <= MAX_IDS_PER_BATCH:
                pack.append(piece)
                size += len(piece.remaining)
            if size == MAX_IDS_PER_BATCH or len(pack) == MAX_PIECES_PER_PACK:
                break
        packs.append(pack)
        taken = {p.row_key for p in pack}
        left = [p for p in left if p.row_key not in taken]
    return packs


def _whole_jobs(stored: Sequence[Piece]) -> dict[str, Piece]:
    """The done pieces in `stored` that are the whole of their job, by job.

    A job of at most one batch's IDs is stored as a single piece; a job
    size of 0 comes from a piece written before sizes were kept.
    """
    return {
        p.job_id: p for p in stored if p.done and 0 < p.job_size <= MAX_IDS_PER_BATCH
    }


def _final_status(total: BatchOutcome) -> JobStatus:
    return JobStatus.FAILED if total.failed else JobStatus.COMPLETED


def _transient(failure: Failure) -> bool:
    if failure.status is None:
        return True
    return failure.status >= 500 or failure.status in _TRANSIENT_4XX
