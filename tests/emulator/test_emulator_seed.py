"""The seed tenant: its time shift, and paging through all 15,000 rows."""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from emulator import SEED_PATH, SNAPSHOT, load_seed
from emulator.timestamps import parse_timestamp

TIME_FIELDS = ("creationTimeDateTimeUtc", "lastUpdateTime", "expirationTime")
SEVEN_DIGITS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z")
WHOLE_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
SEED_SIZE = 15_000


@pytest.fixture(scope="module")
def snapshot_rows():
    with gzip.open(SEED_PATH, "rt", encoding="utf-8") as handle:
        return json.load(handle)["value"]


def test_seed_times_move_by_now_minus_the_snapshot(snapshot_rows):
    now = datetime(2027, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)

    shifted = load_seed(now)

    assert len(shifted) == SEED_SIZE
    for before, after in zip(snapshot_rows[::97], shifted[::97], strict=True):
        for name in TIME_FIELDS:
            if before[name] is None:
                assert after[name] is None
                continue
            moved = parse_timestamp(after[name]) - parse_timestamp(before[name])
            assert timedelta(0) <= moved - (now - SNAPSHOT) < timedelta(seconds=1)


def test_seed_keeps_the_apis_formats_and_seventh_digit(snapshot_rows):
    shifted = load_seed(SNAPSHOT + timedelta(days=3, microseconds=5))

    first_before, first_after = snapshot_rows[0], shifted[0]
    assert SEVEN_DIGITS.fullmatch(first_after["creationTimeDateTimeUtc"])
    assert (
        first_after["creationTimeDateTimeUtc"][-2]
        == (first_before["creationTimeDateTimeUtc"][-2])
    )
    expiries = [r["expirationTime"] for r in shifted if r["expirationTime"]]
    assert all(WHOLE_SECONDS.fullmatch(expiry) for expiry in expiries)


def test_seed_at_the_snapshot_is_the_file_unchanged(snapshot_rows):
    assert load_seed(SNAPSHOT) == snapshot_rows


def test_seed_expiries_keep_their_margin_from_now():
    now = datetime(2028, 1, 1, tzinfo=UTC)

    rows = load_seed(now)

    soonest = min(
        parse_timestamp(r["expirationTime"]) for r in rows if r["expirationTime"]
    )
    assert soonest > now
    assert soonest - now < timedelta(days=180)


def test_seed_copies_are_independent():
    first = load_seed(SNAPSHOT)
    first[0]["rbacGroupIds"].append("x")
    first[0]["title"] = "changed"

    second = load_seed(SNAPSHOT)

    assert second[0]["rbacGroupIds"] == [] and second[0]["title"] != "changed"


def test_seed_needs_an_aware_time():
    with pytest.raises(ValueError, match="timezone"):
        load_seed(datetime(2027, 1, 1))


def test_all_15000_come_back_in_two_default_pages(seeded_api):
    first = seeded_api.list().json()
    second = seeded_api.session.get(first["@odata.nextLink"], timeout=30).json()

    ids = [r["id"] for r in first["value"] + second["value"]]
    assert (len(first["value"]), len(second["value"])) == (10_000, 5_000)
    assert "@odata.nextLink" not in second
    assert len(set(ids)) == SEED_SIZE
    assert ids == sorted(ids, key=int)
    assert (ids[0], ids[-1]) == ("10051", "55071")


def test_next_links_walk_the_whole_seed_with_a_small_top(seeded_api):
    seen, url, pages = [], f"{seeded_api.base_url}/api/indicators?$top=4000", 0
    while url:
        body = seeded_api.session.get(url, timeout=30).json()
        seen.extend(r["id"] for r in body["value"])
        url, pages = body.get("@odata.nextLink"), pages + 1

    assert pages == 4
    assert len(seen) == len(set(seen)) == SEED_SIZE


def test_a_filtered_listing_pages_within_the_filter(seeded_api, seeded):
    expression = "indicatorType eq 'FileMd5' and expirationTime eq null"
    expected = [
        r["id"]
        for r in seeded.emulator.indicators()
        if r["indicatorType"] == "FileMd5" and r["expirationTime"] is None
    ]
    seen, url = [], None
    response = seeded_api.list(**{"$filter": expression, "$top": "100"})
    while True:
        body = response.json()
        seen.extend(r["id"] for r in body["value"])
        url = body.get("@odata.nextLink")
        if url is None:
            break
        response = seeded_api.session.get(url, timeout=30)

    assert 100 < len(expected) == len(seen)
    assert seen == expected


def test_the_seed_tenant_is_full(seeded_api):
    response = seeded_api.post(
        "/api/indicators",
        json={
            "indicatorValue": "192.0.2.1",
            "indicatorType": "IpAddress",
            "action": "Block",
            "title": "one too many",
            "description": "over the cap",
        },
    )

    assert response.status_code == 400
    assert len(seeded_api.listed_ids(**{"$top": "10000", "$skip": "10000"})) == 5_000
