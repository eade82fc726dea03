from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.deletion import TenantListing, settle_batch
from shared.ids import chunk_ids
from shared.outcomes import combine
from shared.report import BatchOutcome, DeletionReport

from .fake_defender import FakeDefender

BEHAVIOURS = ["none", "found"]


def run(defender: FakeDefender, ids: list[int]) -> dict[str, Any]:
    listing = TenantListing(defender)  # type: ignore[arg-type]
    outcome = BatchOutcome()
    for batch in chunk_ids(ids):
        outcome.merge(settle_batch(defender, batch, listing))  # type: ignore[arg-type]
    return DeletionReport.of(ids, outcome).to_dict()


def test_ids_that_all_exist_take_one_call_per_500() -> None:
    ids = list(range(1, 1201))
    defender = FakeDefender(set(ids))

    report = run(defender, ids)

    assert report["counts"]["deleted"] == 1200
    assert defender.batch_calls == 3
    assert defender.present == set()


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
def test_404_batch_is_retried_without_missing_ids(behaviour: str) -> None:
    ids = [1, 2, 3, 4, 5]
    defender = FakeDefender({1, 2, 4, 5}, partial_failure=behaviour)

    report = run(defender, ids)

    assert "3" in report["notFound"]
    assert defender.present == set()
    assert defender.statuses[0] == 404
    if behaviour == "none":
        assert report["deleted"] == ["1", "2", "4", "5"]
    else:
        # The 404 call removed them, but no 204 confirmed it.
        assert report["deleted"] == []
        assert set(report["notFound"]) == {"1", "2", "3", "4", "5"}


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
def test_forbidden_ids_are_isolated_and_the_rest_deleted(behaviour: str) -> None:
    ids = list(range(1, 41))
    defender = FakeDefender(set(ids), forbidden={7, 30}, partial_failure=behaviour)

    report = run(defender, ids)

    assert [f["id"] for f in report["forbidden"]] == ["7", "30"]
    assert all(f["code"] == "Forbidden" for f in report["forbidden"])
    assert defender.present == {7, 30}
    settled = report["counts"]["deleted"] + report["counts"]["notFound"]
    assert settled == 38


def test_server_errors_leave_ids_failed_with_defenders_code_and_target() -> None:
    defender = FakeDefender({1, 2}, failing_batches=1)

    report = run(defender, [1, 2])

    assert report["counts"]["failed"] == 2
    assert report["failed"][0]["code"] == "ServiceUnavailable"
    assert report["failed"][0]["target"] == "t-503"
    assert report["deleted"] == []


@settings(max_examples=150, deadline=None)
@given(
    tenant=st.sets(st.integers(1, 3000), max_size=1200),
    requested=st.lists(st.integers(1, 3000), min_size=1, max_size=1200, unique=True),
    forbidden_share=st.integers(0, 40),
    behaviour=st.sampled_from(BEHAVIOURS),
)
def test_every_id_settles_once_and_only_confirmed_deletions_are_reported(
    tenant: set[int],
    requested: list[int],
    forbidden_share: int,
    behaviour: str,
) -> None:
    forbidden = {
        i for i in tenant if forbidden_share and i % 97 < forbidden_share // 10
    }
    defender = FakeDefender(tenant, forbidden=forbidden, partial_failure=behaviour)

    report = run(defender, requested)

    reported = (
        report["deleted"]
        + report["notFound"]
        + [f["id"] for f in report["forbidden"] + report["failed"]]
    )
    assert sorted(map(int, reported)) == sorted(requested)
    assert set(map(int, report["deleted"])) <= defender.confirmed
    assert not (set(requested) - forbidden) & defender.present
    assert {int(f["id"]) for f in report["forbidden"]} == forbidden & set(requested)


def test_a_confirmed_deletion_wins_over_a_later_not_found() -> None:
    earlier = BatchOutcome(not_found=[1, 2], deleted=[3])
    later = BatchOutcome(deleted=[1], not_found=[3, 4])

    merged = combine(earlier, later)

    assert sorted(merged.deleted) == [1, 3]
    assert sorted(merged.not_found) == [2, 4]
