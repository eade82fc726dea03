"""Pieces as the job store hands them to the worker, for unit tests."""

from __future__ import annotations

from shared.jobs import Piece
from shared.report import BatchOutcome


def pending_piece(n: int, ids: int, *, stamped_ms: int) -> Piece:
    """Job `n`'s only piece: `ids` pending IDs, stamped at `stamped_ms`."""
    return Piece(
        row_key=f"piece-{stamped_ms:013d}-job{n}-00000",
        job_id=f"job{n}",
        created_ms=stamped_ms,
        remaining=list(range(n * 1000, n * 1000 + ids)),
        outcome=BatchOutcome(),
        state="pending",
        claim=None,
        lease_until=0.0,
        not_before=0.0,
        attempts=0,
        job_size=ids,
        last_error=None,
        etag="*",
    )
