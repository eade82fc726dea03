"""The job store against Azurite: claims, leases and late answers."""

from __future__ import annotations

import time
import uuid

import pytest

from localdev.stack import LocalStack
from shared.jobs import JobStatus, JobStore, Piece
from shared.report import BatchOutcome
from shared.settings import Settings
from shared.storage import open_state_table

pytestmark = pytest.mark.integration


@pytest.fixture
def store(stack: LocalStack) -> JobStore:
    table = open_state_table(Settings.from_environ())
    return JobStore(table, f"test-{uuid.uuid4().hex}")


def test_only_one_claim_wins_a_piece(store: JobStore) -> None:
    store.create([1, 2, 3])
    pieces = store.claimable()

    first = store.claim(pieces, "a", lease_s=60)
    second = store.claim(pieces, "b", lease_s=60)

    assert first is not None and second is None
    assert store.claimable() == []


def test_an_expired_lease_lets_another_worker_take_over(store: JobStore) -> None:
    store.create([1, 2, 3])
    assert store.claim(store.claimable(), "a", lease_s=0.2) is not None

    time.sleep(0.3)
    taken = store.claim(store.claimable(), "b", lease_s=60)

    assert taken is not None and taken[0].claim == "b"


def taken_over(store: JobStore) -> tuple[list[Piece], list[Piece]]:
    """The waiting pieces as claimed by "a", whose lease then ran out, and
    as claimed after it by "b"."""
    old = store.claim(store.claimable(), "a", lease_s=0.2)
    assert old is not None
    time.sleep(0.3)
    new = store.claim(store.claimable(), "b", lease_s=60)
    assert new is not None
    return old, new


def test_a_late_204_wins_over_the_new_owners_404(store: JobStore) -> None:
    job, _ = store.create([1, 2, 3])
    old, new = taken_over(store)
    key = new[0].row_key

    # The new owner resends and is told 404 for what "a" already deleted.
    assert store.record(
        new, "b", {key: BatchOutcome(not_found=[1, 2], deleted=[3])}, None
    )
    # Then "a" learns its own 204 for 1 and 2, after losing the claim.
    assert not store.record(old, "a", {key: BatchOutcome(deleted=[1, 2])}, None)

    (piece,) = store.pieces_of(job)
    assert sorted(piece.outcome.deleted) == [1, 2, 3]
    assert piece.outcome.not_found == []
    assert piece.remaining == []


def test_a_claim_carries_what_recording_needs(store: JobStore) -> None:
    job, _ = store.create([1, 2, 3])
    claimed = store.claim(store.claimable(), "a", lease_s=60)
    assert claimed is not None
    key = claimed[0].row_key

    stored = store.record(
        claimed, "a", {key: BatchOutcome(deleted=[1, 2], not_found=[3])}, None
    )

    assert stored is not None
    (piece,) = store.pieces_of(job)
    assert piece.done and stored[0].done
    assert piece.etag == stored[0].etag
    assert sorted(piece.outcome.deleted) == [1, 2]
    assert piece.outcome.not_found == [3]


def test_a_former_owners_late_deletions_survive_the_owners_record(
    store: JobStore,
) -> None:
    job, _ = store.create([1, 2, 3, 4])
    old, new = taken_over(store)
    key = new[0].row_key

    # "a" learns of 1's deletion after losing the claim, before "b" records.
    assert store.record(old, "a", {key: BatchOutcome(deleted=[1])}, None) is None
    stored = store.record(new, "b", {key: BatchOutcome(deleted=[2, 3, 4])}, None)

    assert stored is not None
    (piece,) = store.pieces_of(job)
    assert piece.done
    assert sorted(piece.outcome.deleted) == [1, 2, 3, 4]


def test_job_statuses_are_set_together_and_purged_jobs_skipped(
    store: JobStore,
) -> None:
    first, _ = store.create([1])
    second, _ = store.create([2])
    gone, _ = store.create([3])
    store.purge(gone)

    store.mark_running([first.id, second.id, gone.id])
    running = [store.get(first.id), store.get(second.id)]
    store.finish({first.id: JobStatus.COMPLETED, gone.id: JobStatus.FAILED})

    assert [j.status for j in running if j] == [JobStatus.RUNNING] * 2
    assert store.get(gone.id) is None
    finished = store.get(first.id)
    assert finished is not None and finished.status == JobStatus.COMPLETED
    assert finished.updated >= running[0].updated  # type: ignore[union-attr]


def test_a_key_in_use_returns_its_job_without_storing_another(
    store: JobStore,
) -> None:
    first, created = store.create([1, 2], idempotency_key="retry-me")
    again, created_again = store.create([3], idempotency_key="retry-me")

    assert created and not created_again
    assert again.id == first.id
    assert [p.remaining for p in store.pieces_of(first)] == [[1, 2]]
    assert len(store.find_jobs(limit=10)) == 1
