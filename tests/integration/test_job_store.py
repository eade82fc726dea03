"""The job store against Azurite: claims, leases and late answers."""

from __future__ import annotations

import time
import uuid

import pytest

from localdev.stack import LocalStack
from shared.jobs import JobStore
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


def test_a_late_204_wins_over_the_new_owners_404(store: JobStore) -> None:
    job, _ = store.create([1, 2, 3])
    old = store.claim(store.claimable(), "a", lease_s=0.2)
    assert old is not None
    time.sleep(0.3)
    new = store.claim(store.claimable(), "b", lease_s=60)
    assert new is not None
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
