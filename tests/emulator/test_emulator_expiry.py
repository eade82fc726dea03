"""Indicators vanish, to the second, once their expirationTime is reached."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest


def _iso(epoch):
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def expiry(clock):
    """Ten seconds after the test clock's start, in the API's format."""
    return _iso(clock.now + 10)


def test_an_indicator_is_listed_until_its_expiry(api, tenant, row, clock, expiry):
    tenant(row(1, expirationTime=expiry), row(2))

    clock.advance(9.999)
    assert api.listed_ids() == ["1", "2"]
    clock.advance(0.001)

    assert api.listed_ids() == ["2"]


def test_deleting_an_expired_indicator_answers_404(api, tenant, row, clock, expiry):
    tenant(row(1, expirationTime=expiry), row(2))
    clock.advance(10)

    assert api.batch_delete(["1", "2"]).status_code == 404
    assert api.delete("/api/indicators/1").status_code == 404
    assert api.batch_delete(["2"]).status_code == 204


def test_the_python_and_control_views_drop_expired_indicators(
    emulator, control, tenant, row, clock, expiry
):
    tenant(row(1, expirationTime=expiry), row(2))
    clock.advance(60)

    assert [r["id"] for r in emulator.indicators()] == ["2"]
    assert [r["id"] for r in control.get("/_emulator/indicators").json()["value"]] == [
        "2"
    ]


def test_loading_an_already_expired_indicator_keeps_it_out(api, tenant, row):
    tenant(row(1, expirationTime="2001-01-01T00:00:00Z"), row(2))

    assert api.listed_ids() == ["2"]


def test_an_updated_expiry_is_the_one_that_counts(api, tenant, row, clock, expiry):
    tenant(row(1, indicatorValue="192.0.2.7", expirationTime=expiry))
    later = _iso(clock.now + 100)

    updated = api.post(
        "/api/indicators",
        json={
            "indicatorValue": "192.0.2.7",
            "indicatorType": "IpAddress",
            "action": "Block",
            "title": "renewed",
            "description": "kept longer",
            "expirationTime": later,
        },
    )
    clock.advance(50)

    assert updated.json()["id"] == "1"
    assert api.listed_ids() == ["1"]
    clock.advance(50)
    assert api.listed_ids() == []
