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

import datetime as dt
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
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
    "Job",
    "JobStatus",
    "JobStore",
    "Piece",
]

logger = logging.getLogger(__name__)

# A transaction holds at most 100 operations: the job, its key, 98 pieces.
_MAX_OPERATIONS = 100
MAX_PIECES_PER_JOB = _MAX_OPERATIONS - 2
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
    ) -> tuple[Job, bool]:
        """Store a new job, or return the one its idempotency key made.

        A `finished` job (a dry run) is stored Completed with no pieces.
        Returns the job and whether it was created now.
        """
        if idempotency_key:
            existing = self.find_by_key(idempotency_key)
            if existing is not None:
                return existing, False
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
        except TableTransactionError as exc:
            if idempotency_key and exc.status_code == 409:
                existing = self.find_by_key(idempotency_key)
                if existing is not None:
                    return existing, False
            raise StorageError("could not store the job") from exc
        except AzureError as exc:
            # A transaction that timed out may still have been applied: the
            # caller must not be told nothing started while the job runs.
            if self._stored_anyway(job_id):
                logger.warning("job %s was stored although the call failed", job_id)
                return job, True
            raise StorageError("could not store the job") from exc
        logger.info("job %s: %d IDs in %d pieces", job_id, len(ids), len(pieces))
        return job, True

    def _stored_anyway(self, job_id: str) -> bool:
        try:
            return self.get(job_id) is not None
        except StorageError:
            return False

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
        if not self._transact(pieces, updates):
            current = self._reread(pieces)
            if not all(p.claim == claim and p.state == _CLAIMED for p in current):
                return None
            return current
        return self._reread(pieces)

    def renew(self, pieces: Sequence[Piece], claim: str, lease_s: float) -> bool:
        lease_until = self._clock() + lease_s
        current = self._reread(pieces)
        if not all(p.claim == claim and p.state == _CLAIMED for p in current):
            return False
        return self._transact(current, {"LeaseUntil": lease_until})

    def record(
        self,
        pieces: Sequence[Piece],
        claim: str,
        settled: dict[str, BatchOutcome],
        retry_at: float | None,
        last_error: str | None = None,
    ) -> bool:
        """Store what was settled of each claimed piece; False if we lost them."""
        current = {p.row_key: p for p in self._reread(pieces)}
        if not all(p.claim == claim and p.state == _CLAIMED for p in current.values()):
            self._record_late_deletions(settled)
            return False
        operations = []
        for key, piece in current.items():
            outcome = settled.get(key, BatchOutcome())
            merged = combine(piece.outcome, outcome)
            done_ids = set(outcome.settled_ids())
            remaining = [i for i in piece.remaining if i not in done_ids]
            state = _DONE if not remaining else _PENDING
            entity = {
                "PartitionKey": self._partition,
                "RowKey": key,
                "Ids": json.dumps(remaining),
                "Outcome": encode_outcome(merged),
                "State": state,
                "NotBefore": retry_at or 0.0,
                "Attempts": piece.attempts + (1 if remaining else 0),
                "LastError": last_error if remaining else "",
            }
            operations.append(("update", entity, _if_match(piece.etag)))
        return self._submit(operations, pieces, claim)

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

    def _submit(
        self, operations: list[Any], pieces: Sequence[Piece], claim: str
    ) -> bool:
        try:
            self._table.submit_transaction(operations)
            return True
        except TableTransactionError as exc:
            if exc.status_code != 412:
                raise StorageError("could not record a batch's outcome") from exc
        except AzureError as exc:
            raise StorageError("could not record a batch's outcome") from exc
        # A 412 after the SDK retried may mean our first attempt went in.
        current = self._reread(pieces)
        return all(p.claim == claim and p.state != _CLAIMED for p in current)

    def _transact(self, pieces: Sequence[Piece], updates: dict[str, Any]) -> bool:
        operations = [
            (
                "update",
                {"PartitionKey": self._partition, "RowKey": p.row_key, **updates},
                _if_match(p.etag),
            )
            for p in pieces
        ]
        try:
            self._table.submit_transaction(operations)
        except TableTransactionError as exc:
            if exc.status_code in (404, 412):
                return False
            raise StorageError("could not update pieces") from exc
        except AzureError as exc:
            raise StorageError("could not update pieces") from exc
        return True

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
        }

    def _key_entity(self, key: str, job_id: str) -> dict[str, Any]:
        return {"PartitionKey": self._partition, "RowKey": _key_row(key), "Job": job_id}

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
