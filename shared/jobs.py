"""Durable deletion jobs in Table Storage.

Everything for one tenant lives in one partition of one table, so a job, its
idempotency key and all its pieces are written in a single atomic
transaction, and claims on pieces from several jobs are atomic too.

- ``job-<id>``: the job's status record, shaped like Durable Functions'.
- ``idem-<sha256>``: an idempotency key, pointing at the job it created.
- ``piece-<created ms>-<job id>-<n>``: at most 500 of a job's IDs. A piece is
  ``pending`` until a worker claims it with a lease, and ``done`` once every
  one of its IDs is settled. Row keys sort pieces in arrival order, so
  workers serve jobs first come, first served.

A piece's claim is written before its IDs are sent. A worker that dies holding
one leaves it claimed until the lease expires; the next worker then sends the
remaining IDs again. Whatever Defender already deleted then answers 404 and is
settled from a listing as not found: no ID is reported deleted without a 204.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from .errors import StorageError
from .ids import MAX_IDS_PER_BATCH, chunk_ids
from .outcomes import combine, decode_outcome, encode_outcome
from .report import BatchOutcome

__all__ = [
    "MAX_IDS_PER_JOB",
    "MAX_PIECES_PER_JOB",
    "MAX_PIECES_PER_PACK",
    "Job",
    "JobStatus",
    "JobStore",
    "JobUnconfirmed",
    "Piece",
]

logger = logging.getLogger(__name__)

# A transaction holds at most 100 operations: the job, its key, 98 pieces.
_MAX_OPERATIONS = 100
MAX_PIECES_PER_JOB = _MAX_OPERATIONS - 2
# Pieces claimed (and recorded) together, in one transaction.
MAX_PIECES_PER_PACK = _MAX_OPERATIONS
MAX_IDS_PER_JOB = MAX_PIECES_PER_JOB * MAX_IDS_PER_BATCH
# Table Storage strings hold 64 KiB of UTF-16: 32K characters.
_MAX_AUDIT_CHARS = 30_000
_MAX_FIELD_CHARS = 2_000
_JOB = "job-"
_IDEM = "idem-"
_PIECE = "piece-"
_LATE_WRITE_ATTEMPTS = 5
_PENDING = "pending"
_CLAIMED = "claimed"
_DONE = "done"


class JobUnconfirmed(StorageError):
    """Whether a job was stored is unknown: its transaction and the look for
    it afterwards both failed, so storage may still apply it, and then the
    job runs. `job_id` is the ID it has if it was stored.

    A repeat of the request with the same idempotency key is safe: it finds
    the job if it was stored, instead of starting another.
    """

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"storage did not answer, so whether job {job_id} was stored is "
            "unknown; if it was, it will run"
        )
        self.job_id = job_id


class JobStatus(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"


@dataclass
class Job:
    """A job's status record."""

    id: str
    status: JobStatus
    created: str
    updated: str
    requested: int
    piece_prefix: str
    requested_by: str | None = None
    reason: str | None = None
    idempotency_key: str | None = None
    audit: dict[str, Any] = field(default_factory=dict)
    # A digest of what was asked (see `shared.submission`), so that a key
    # used again for a different request is told apart from a retry.
    request_hash: str | None = None
    etag: str | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.status in (JobStatus.COMPLETED, JobStatus.FAILED)


@dataclass
class Piece:
    """Up to 500 of one job's IDs and what has been settled of them."""

    row_key: str
    job_id: str
    created_ms: int
    remaining: list[int]
    outcome: BatchOutcome
    state: str
    claim: str | None
    lease_until: float
    not_before: float
    attempts: int
    job_size: int
    last_error: str | None
    etag: str = field(repr=False)

    @property
    def done(self) -> bool:
        """Whether every one of the piece's IDs is settled."""
        return self.state == _DONE


class JobStore:
    """Creates, claims and completes jobs in one tenant's partition."""

    def __init__(
        self,
        table: TableClient,
        partition: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table
        self._partition = partition
        self._clock = clock

    # -- jobs -------------------------------------------------------------

    def create(
        self,
        ids: Sequence[int],
        *,
        requested_by: str | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
        audit: dict[str, Any] | None = None,
        finished: bool = False,
        request_hash: str | None = None,
    ) -> tuple[Job, bool]:
        """Store a new job, or return the one its idempotency key made.

        A `finished` job (a dry run) is stored Completed with no pieces.
        Returns the job and whether it was created now. A key already in
        use fails the transaction that would store it, so a repeat (or a
        racing twin) finds the existing job without a read beforehand.
        """
        now_ms = int(self._clock() * 1000)
        job_id = uuid.uuid4().hex
        job = Job(
            id=job_id,
            status=JobStatus.COMPLETED if finished else JobStatus.PENDING,
            created=_iso(now_ms / 1000),
            updated=_iso(now_ms / 1000),
            requested=len(ids),
            piece_prefix=f"{_PIECE}{now_ms:013d}-{job_id}-",
            requested_by=requested_by,
            reason=reason,
            idempotency_key=idempotency_key,
            audit=dict(audit or {}),
            request_hash=request_hash,
        )
        operations = [("create", self._job_entity(job))]
        if idempotency_key:
            operations.append(("create", self._key_entity(idempotency_key, job_id)))
        pieces = [] if finished else list(chunk_ids(ids, MAX_IDS_PER_BATCH))
        if len(pieces) > MAX_PIECES_PER_JOB:
            raise ValueError(f"a job holds at most {MAX_PIECES_PER_JOB} pieces")
        for n, piece_ids in enumerate(pieces):
            operations.append(("create", self._piece_entity(job, n, piece_ids)))
        try:
            self._table.submit_transaction(operations)
        except AzureError as exc:
            return self._after_failed_create(job, exc)
        logger.info("job %s: %d IDs in %d pieces", job_id, len(ids), len(pieces))
        return job, True

    def _after_failed_create(self, job: Job, error: AzureError) -> tuple[Job, bool]:
        """What a failed transaction left of `job`: it, or the job its
        idempotency key made meanwhile (a race with a repeat of the request).

        A failure does not prove that nothing was stored: the SDK retries a
        transaction whose answer did not arrive, so an earlier attempt may
        have been applied. A caller told that nothing started would not
        expect the job to run, so the job is looked for; when that look
        fails too, raises JobUnconfirmed, and StorageError when the job is
        not there.
        """
        try:
            stored = self.get(job.id)
            existing = None
            if stored is None and job.idempotency_key:
                existing = self.find_by_key(job.idempotency_key)
        except StorageError:
            raise JobUnconfirmed(job.id) from error
        if stored is not None:
            logger.warning("job %s was stored although the call failed", job.id)
            return stored, True
        if existing is not None:
            return existing, False
        # Limitation: a look that finds nothing is taken as proof that nothing
        # was stored, though a request that timed out could still reach
        # storage after the look. Only a write that fences the job's row off
        # (so a late transaction fails) would make that certain.
        raise StorageError("could not store the job") from error

    def get(self, job_id: str) -> Job | None:
        try:
            entity = self._table.get_entity(self._partition, _JOB + job_id)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise StorageError(f"could not read job {job_id}") from exc
        return _job_from(entity)

    def pieces_of(self, job: Job) -> list[Piece]:
        return self._query_pieces(
            f"RowKey ge '{job.piece_prefix}' and RowKey lt '{job.piece_prefix}~'"
        )

    def find_jobs(
        self,
        *,
        limit: int,
        status: str | None = None,
        requested_by: str | None = None,
        since: str | None = None,
        before: str | None = None,
    ) -> list[Job]:
        """Jobs matching every given filter, newest first."""
        query = f"PartitionKey eq '{self._partition}' and RowKey ge '{_JOB}' and "
        query += f"RowKey lt '{_JOB}~'"
        parameters: dict[str, str] = {}
        for column, value, operator in (
            ("RuntimeStatus", status, "eq"),
            ("RequestedBy", requested_by, "eq"),
            ("CreatedTime", since, "ge"),
            ("CreatedTime", before, "lt"),
        ):
            if value is not None:
                name = f"p{len(parameters)}"
                parameters[name] = value
                query += f" and {column} {operator} @{name}"
        try:
            entities = self._table.query_entities(query, parameters=parameters)
            jobs = [_job_from(e) for e in entities]
        except AzureError as exc:
            raise StorageError("could not list jobs") from exc
        return sorted(jobs, key=lambda j: j.created, reverse=True)[:limit]

    def purge(self, job: Job) -> None:
        """Delete a job with its pieces and idempotency key."""
        rows = [p.row_key for p in self.pieces_of(job)]
        if job.idempotency_key:
            rows.append(_key_row(job.idempotency_key))
        rows.append(_JOB + job.id)
        for start in range(0, len(rows), _MAX_OPERATIONS):
            operations = [
                ("delete", {"PartitionKey": self._partition, "RowKey": row})
                for row in rows[start : start + _MAX_OPERATIONS]
            ]
            try:
                self._table.submit_transaction(operations)
            except AzureError as exc:
                raise StorageError(f"could not purge job {job.id}") from exc

    def set_status(self, job: Job, status: JobStatus) -> Job:
        """Move a job to `status` unless it is already finished."""
        while not job.finished and job.status != status:
            job.status = status
            job.updated = _iso(self._clock())
            try:
                self._table.update_entity(
                    self._job_entity(job),
                    mode=UpdateMode.MERGE,
                    etag=job.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
                return job
            except AzureError:
                current = self.get(job.id)
                if current is None:
                    raise StorageError(f"job {job.id} vanished") from None
                if current.status == status:
                    return current
                job = current
        return job

    def mark_running(self, job_ids: Iterable[str]) -> None:
        """Show jobs one of whose pieces was just claimed as Running.

        Written without reading the jobs first: a job finishes only once
        every piece is done, so while the claim holds, no final status can
        be overwritten. (A claimer that stalled past its lease could still
        do so; the next look at the job, `finish_if_settled`, repairs it.)
        """
        self._merge_jobs(
            {job_id: {"RuntimeStatus": JobStatus.RUNNING.value} for job_id in job_ids}
        )

    def finish(self, statuses: Mapping[str, JobStatus]) -> None:
        """Give jobs whose every piece is done their final status.

        The caller knows the pieces are done (it has just recorded them):
        the jobs are not read first, and a final status is final, so
        writing it twice is harmless.
        """
        self._merge_jobs(
            {
                job_id: {"RuntimeStatus": status.value}
                for job_id, status in statuses.items()
            }
        )

    def _merge_jobs(self, changes: Mapping[str, dict[str, Any]]) -> None:
        """Merge `changes` into job rows, a transaction per 100; a job that
        no longer exists (purged) is skipped."""
        updated = _iso(self._clock())
        entities = [
            {
                "PartitionKey": self._partition,
                "RowKey": _JOB + job_id,
                "LastUpdatedTime": updated,
                **columns,
            }
            for job_id, columns in changes.items()
        ]
        merge = {"mode": UpdateMode.MERGE}
        for start in range(0, len(entities), _MAX_OPERATIONS):
            chunk = entities[start : start + _MAX_OPERATIONS]
            try:
                self._table.submit_transaction([("update", e, merge) for e in chunk])
            except TableTransactionError as exc:
                if exc.status_code != 404:
                    raise StorageError("could not update job statuses") from exc
                self._merge_each(chunk)
            except AzureError as exc:
                raise StorageError("could not update job statuses") from exc

    def _merge_each(self, entities: Sequence[dict[str, Any]]) -> None:
        for entity in entities:
            try:
                self._table.update_entity(entity, mode=UpdateMode.MERGE)
            except ResourceNotFoundError:
                continue
            except AzureError as exc:
                raise StorageError("could not update job statuses") from exc

    # -- pieces -----------------------------------------------------------

    def has_unfinished_pieces(self, job: Job) -> bool:
        """Whether any piece of `job` still has IDs to settle (a cheap query)."""
        query = (
            f"PartitionKey eq '{self._partition}' and "
            f"RowKey ge '{job.piece_prefix}' and RowKey lt '{job.piece_prefix}~' "
            f"and State ne '{_DONE}'"
        )
        try:
            rows = self._table.query_entities(query, select=["RowKey"])
            return next(iter(rows), None) is not None
        except AzureError as exc:
            raise StorageError(f"could not read job {job.id}") from exc

    def claimable(self) -> list[Piece]:
        """Pieces that are pending, or claimed with an expired lease."""
        now = self._clock()
        pieces = self._query_pieces(f"State ne '{_DONE}'")
        ready = [
            p
            for p in pieces
            if p.not_before <= now and (p.state == _PENDING or p.lease_until < now)
        ]
        return sorted(ready, key=lambda p: p.row_key)

    def claim(
        self, pieces: Sequence[Piece], claim: str, lease_s: float
    ) -> list[Piece] | None:
        """Claim all of `pieces` at once; None when another worker won one."""
        lease_until = self._clock() + lease_s
        updates = {"State": _CLAIMED, "Claim": claim, "LeaseUntil": lease_until}
        etags = self._transact(pieces, updates)
        if etags is None:
            # Another worker was first, or a retry hid our own success: the
            # transaction is atomic, so one piece tells which.
            first = self._read_piece(pieces[0].row_key)
            if first.claim != claim or first.state != _CLAIMED:
                return None
            return self._reread(pieces)
        # The transaction's answer carries each piece's new ETag: nothing
        # else changed, so the pieces need not be read back.
        return [
            dataclasses.replace(
                p,
                state=_CLAIMED,
                claim=claim,
                lease_until=lease_until,
                etag=etag,
            )
            for p, etag in zip(pieces, etags, strict=True)
        ]

    def renew(self, pieces: Sequence[Piece], claim: str, lease_s: float) -> bool:
        lease_until = self._clock() + lease_s
        current = self._reread(pieces)
        if not all(p.claim == claim and p.state == _CLAIMED for p in current):
            return False
        return self._transact(current, {"LeaseUntil": lease_until}) is not None

    def release(self, pieces: Sequence[Piece], claim: str) -> None:
        """Give back those of `pieces` that `claim` holds, so that any worker
        may take them at once instead of after the lease; raises StorageError.
        """
        held = [
            p for p in self._reread(pieces) if p.claim == claim and p.state == _CLAIMED
        ]
        if held:
            self._transact(held, {"State": _PENDING, "Claim": "", "LeaseUntil": 0.0})

    def record(
        self,
        pieces: Sequence[Piece],
        claim: str,
        settled: dict[str, BatchOutcome],
        retry_at: float | None,
        last_error: str | None = None,
        *,
        count_attempt: bool = True,
    ) -> list[Piece] | None:
        """Store what was settled of each claimed piece.

        `pieces` are as `claim` returned them: their ETags make the write
        conditional, so nothing is read first. Returns the pieces as stored,
        or None when the claim was lost (its lease ran out and another worker
        took them over), in which case only confirmed deletions are kept.
        A piece left with IDs counts an attempt unless `count_attempt` is
        False (none of its IDs failed: the calls were held back).
        """
        current = list(pieces)
        for _ in range(_LATE_WRITE_ATTEMPTS):
            stored = [
                _settled_piece(
                    p, settled.get(p.row_key), retry_at, last_error, count_attempt
                )
                for p in current
            ]
            operations = [
                ("update", self._progress_entity(new), _if_match(old.etag))
                for old, new in zip(current, stored, strict=True)
            ]
            try:
                answers = self._table.submit_transaction(operations)
            except TableTransactionError as exc:
                if exc.status_code != 412:
                    raise StorageError("could not record a batch's outcome") from exc
            except AzureError as exc:
                raise StorageError("could not record a batch's outcome") from exc
            else:
                return [
                    dataclasses.replace(p, etag=str(answer["etag"]))
                    for p, answer in zip(stored, answers, strict=True)
                ]
            # A piece changed since it was claimed: our own write may have
            # gone in before the SDK retried it, a former owner may have
            # merged late deletions, or the claim may have been taken over.
            current = self._reread(pieces)
            if all(p.claim == claim and p.state != _CLAIMED for p in current):
                return current
            if not all(p.claim == claim and p.state == _CLAIMED for p in current):
                self._record_late_deletions(settled)
                return None
        raise StorageError(
            "could not record a batch's outcome: its pieces kept changing"
        )

    def _record_late_deletions(self, settled: dict[str, BatchOutcome]) -> None:
        """Keep the 204s of a claim that was taken over.

        Another worker now owns the pieces and may already have resent these
        IDs and been told 404; a confirmed deletion is still the truth, so it
        is merged in and wins. Everything else this claim learned is left to
        the new owner.
        """
        logger.warning("a claim was taken over; keeping only its confirmed deletions")
        for key, outcome in settled.items():
            if not outcome.deleted:
                continue
            confirmed = BatchOutcome(deleted=list(outcome.deleted))
            for _ in range(_LATE_WRITE_ATTEMPTS):
                piece = self._read_piece(key)
                remaining = [i for i in piece.remaining if i not in confirmed.deleted]
                entity = {
                    "PartitionKey": self._partition,
                    "RowKey": key,
                    "Ids": json.dumps(remaining),
                    "Outcome": encode_outcome(combine(piece.outcome, confirmed)),
                }
                if not remaining:
                    entity["State"] = _DONE
                operation = ("update", entity, _if_match(piece.etag))
                try:
                    self._table.submit_transaction([operation])
                    break
                except TableTransactionError as exc:
                    if exc.status_code != 412:
                        raise StorageError("could not record deletions") from exc
                except AzureError as exc:
                    raise StorageError("could not record deletions") from exc

    def _transact(
        self, pieces: Sequence[Piece], updates: dict[str, Any]
    ) -> list[str] | None:
        """Apply `updates` to every piece if none changed since it was read.

        Returns the pieces' new ETags, or None when one had changed.
        """
        operations = [
            (
                "update",
                {"PartitionKey": self._partition, "RowKey": p.row_key, **updates},
                _if_match(p.etag),
            )
            for p in pieces
        ]
        try:
            answers = self._table.submit_transaction(operations)
        except TableTransactionError as exc:
            if exc.status_code in (404, 412):
                return None
            raise StorageError("could not update pieces") from exc
        except AzureError as exc:
            raise StorageError("could not update pieces") from exc
        return [str(answer["etag"]) for answer in answers]

    def _reread(self, pieces: Iterable[Piece]) -> list[Piece]:
        return [self._read_piece(piece.row_key) for piece in pieces]

    def _read_piece(self, row_key: str) -> Piece:
        try:
            entity = self._table.get_entity(self._partition, row_key)
        except AzureError as exc:
            raise StorageError("could not read a piece") from exc
        return _piece_from(entity)

    def _query_pieces(self, condition: str) -> list[Piece]:
        query = (
            f"PartitionKey eq '{self._partition}' and RowKey ge '{_PIECE}' and "
            f"RowKey lt '{_PIECE}~' and {condition}"
        )
        try:
            return [_piece_from(e) for e in self._table.query_entities(query)]
        except AzureError as exc:
            raise StorageError("could not read job pieces") from exc

    # -- entities -----------------------------------------------------------

    def find_by_key(self, key: str) -> Job | None:
        """The job an idempotency key made, if any."""
        try:
            entity = self._table.get_entity(self._partition, _key_row(key))
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise StorageError("could not read an idempotency key") from exc
        return self.get(str(entity["Job"]))

    def _job_entity(self, job: Job) -> dict[str, Any]:
        return {
            "PartitionKey": self._partition,
            "RowKey": _JOB + job.id,
            "RuntimeStatus": job.status.value,
            "CreatedTime": job.created,
            "LastUpdatedTime": job.updated,
            "Requested": job.requested,
            "PiecePrefix": job.piece_prefix,
            "RequestedBy": job.requested_by,
            "Reason": job.reason,
            "IdempotencyKey": job.idempotency_key,
            "Audit": _audit_json(job.audit),
            "RequestHash": job.request_hash,
        }

    def _key_entity(self, key: str, job_id: str) -> dict[str, Any]:
        return {"PartitionKey": self._partition, "RowKey": _key_row(key), "Job": job_id}

    def _progress_entity(self, piece: Piece) -> dict[str, Any]:
        """The columns of `piece` that settling a batch changes."""
        return {
            "PartitionKey": self._partition,
            "RowKey": piece.row_key,
            "Ids": json.dumps(piece.remaining),
            "Outcome": encode_outcome(piece.outcome),
            "State": piece.state,
            "NotBefore": piece.not_before,
            "Attempts": piece.attempts,
            "LastError": piece.last_error or "",
        }

    def _piece_entity(self, job: Job, n: int, ids: list[int]) -> dict[str, Any]:
        return {
            "PartitionKey": self._partition,
            "RowKey": f"{job.piece_prefix}{n:05d}",
            "Job": job.id,
            "JobSize": job.requested,
            "Ids": json.dumps(ids),
            "Outcome": "",
            "State": _PENDING,
            "Claim": "",
            "LeaseUntil": 0.0,
            "NotBefore": 0.0,
            "Attempts": 0,
        }


def _settled_piece(
    piece: Piece,
    outcome: BatchOutcome | None,
    retry_at: float | None,
    last_error: str | None,
    count_attempt: bool = True,
) -> Piece:
    """`piece` once `outcome` is merged in: done when no ID is left, else
    pending again, not before `retry_at`."""
    outcome = outcome or BatchOutcome()
    done_ids = set(outcome.settled_ids())
    remaining = [i for i in piece.remaining if i not in done_ids]
    return dataclasses.replace(
        piece,
        remaining=remaining,
        outcome=combine(piece.outcome, outcome),
        state=_DONE if not remaining else _PENDING,
        not_before=retry_at or 0.0,
        attempts=piece.attempts + (1 if remaining and count_attempt else 0),
        last_error=last_error if remaining else None,
    )


def _audit_json(audit: dict[str, Any]) -> str:
    """The audit record as JSON, within a table property's 32K characters."""
    text = json.dumps(audit, separators=(",", ":"))
    if len(text) <= _MAX_AUDIT_CHARS:
        return text
    brief = {k: v for k, v in audit.items() if len(json.dumps(v)) < _MAX_FIELD_CHARS}
    brief["truncated"] = sorted(set(audit) - set(brief))
    text = json.dumps(brief, separators=(",", ":"))
    if len(text) > _MAX_AUDIT_CHARS:
        text = json.dumps({"truncated": sorted(audit)})
    return text


def _if_match(etag: str) -> dict[str, Any]:
    return {
        "mode": UpdateMode.MERGE,
        "etag": etag,
        "match_condition": MatchConditions.IfNotModified,
    }


def _key_row(key: str) -> str:
    return _IDEM + hashlib.sha256(key.encode()).hexdigest()


def _job_from(entity: Any) -> Job:
    return Job(
        id=str(entity["RowKey"])[len(_JOB) :],
        status=JobStatus(entity["RuntimeStatus"]),
        created=str(entity["CreatedTime"]),
        updated=str(entity["LastUpdatedTime"]),
        requested=int(entity["Requested"]),
        piece_prefix=str(entity["PiecePrefix"]),
        requested_by=entity.get("RequestedBy"),
        reason=entity.get("Reason"),
        idempotency_key=entity.get("IdempotencyKey"),
        audit=json.loads(entity.get("Audit") or "{}"),
        request_hash=entity.get("RequestHash"),
        etag=entity.metadata["etag"],
    )


def _piece_from(entity: Any) -> Piece:
    row_key = str(entity["RowKey"])
    created_ms = int(row_key[len(_PIECE) :].split("-", 1)[0])
    return Piece(
        row_key=row_key,
        job_id=str(entity["Job"]),
        created_ms=created_ms,
        remaining=[int(i) for i in json.loads(entity["Ids"])],
        outcome=decode_outcome(entity.get("Outcome")),
        state=str(entity["State"]),
        claim=entity.get("Claim") or None,
        lease_until=float(entity.get("LeaseUntil") or 0.0),
        not_before=float(entity.get("NotBefore") or 0.0),
        attempts=int(entity.get("Attempts") or 0),
        job_size=int(entity.get("JobSize") or 0),
        last_error=entity.get("LastError") or None,
        etag=entity.metadata["etag"],
    )


def _iso(epoch_s: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch_s, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
