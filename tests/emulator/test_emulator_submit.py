"""Submit (create or update one) and import (up to 500 at once)."""

from __future__ import annotations

import pytest

NEW = {
    "indicatorValue": "192.0.2.50",
    "indicatorType": "IpAddress",
    "action": "Block",
    "title": "new block",
    "description": "from a test",
}


def test_submit_creates_an_indicator_above_the_highest_id(api, tenant, row, app_id):
    tenant(row(10), row(42))

    created = api.post("/api/indicators", json=NEW | {"severity": "High"})

    body = created.json()
    assert created.status_code == 200
    assert body["id"] == "43"
    assert body["@odata.context"].endswith("/api/$metadata#Indicators/$entity")
    assert body["createdBy"] == body["lastUpdatedBy"] == app_id
    assert body["sourceType"] == "AadApp"
    assert (body["severity"], body["generateAlert"], body["expirationTime"]) == (
        "High",
        False,
        None,
    )
    assert api.listed_ids() == ["10", "42", "43"]


def test_ids_are_not_reused_after_a_delete(api, tenant, row):
    tenant(row(10), row(42))
    api.batch_delete(["42"])

    assert api.post("/api/indicators", json=NEW).json()["id"] == "43"


def test_submit_names_the_app_from_the_config(api, emulator, app_id):
    emulator.configure(app_names={app_id: "ioc-batch-delete"})

    body = api.post("/api/indicators", json=NEW).json()

    assert body["application"] == body["createdBySource"] == "ioc-batch-delete"
    assert body["createdByDisplayName"] == "ioc-batch-delete"


def test_submit_updates_the_same_value_type_and_groups(api, tenant, row):
    tenant(row(5, indicatorValue="192.0.2.50", application="MISP to Defender"))

    updated = api.post("/api/indicators", json=NEW | {"application": "Other"}).json()

    assert updated["id"] == "5"
    assert updated["title"] == "new block"
    assert updated["application"] == "MISP to Defender"
    assert api.listed_ids() == ["5"]


def test_submit_with_other_groups_creates_a_second_indicator(api, tenant, row):
    tenant(row(5, indicatorValue="192.0.2.50"))

    body = api.post("/api/indicators", json=NEW | {"rbacGroupNames": ["Kiosks"]}).json()

    assert (body["id"], body["rbacGroupIds"]) == ("6", ["4152"])


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"title": None}, "MissingRequiredParameter"),
        ({"indicatorValue": ""}, "MissingRequiredParameter"),
        ({"indicatorType": "Hash"}, "InvalidInput"),
        ({"action": "Delete"}, "InvalidInput"),
        ({"severity": "Critical"}, "InvalidInput"),
        ({"generateAlert": "yes"}, "InvalidInput"),
        ({"expirationTime": "tomorrow"}, "InvalidInput"),
        ({"expirationTime": "2001-01-01T00:00:00Z"}, "InvalidInput"),
        ({"rbacGroupNames": ["Nowhere"]}, "InvalidInput"),
        ({"title": 5}, "InvalidInput"),
    ],
)
def test_submit_rejects_bad_fields(api, change, code):
    body = {k: v for k, v in (NEW | change).items() if v is not None}

    response = api.post("/api/indicators", json=body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_submit_needs_json_content_type(api):
    response = api.post("/api/indicators", data=b"{}")

    assert response.status_code == 415


def test_import_reports_each_item(api, tenant, row):
    tenant(row(7))
    items = [NEW, NEW | {"indicatorValue": "192.0.2.51"}, {"indicatorValue": "x"}, 3]

    response = api.post("/api/indicators/import", json={"Indicators": items})

    assert response.status_code == 200
    results = response.json()["value"]
    assert [(r["id"], r["indicator"], r["isFailed"]) for r in results] == [
        ("8", "192.0.2.50", False),
        ("9", "192.0.2.51", False),
        (None, "x", True),
        (None, None, True),
    ]
    assert results[0]["failureReason"] is None
    assert results[2]["failureReason"]
    assert api.listed_ids() == ["7", "8", "9"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "MissingRequiredParameter"),
        ({"indicators": [NEW]}, "MissingRequiredParameter"),
        ({"Indicators": NEW}, "InvalidRequestBody"),
        ({"Indicators": []}, "InvalidInput"),
        ({"Indicators": [NEW] * 501}, "MaximumBatchSizeExceeded"),
    ],
)
def test_import_rejects_a_bad_batch(api, body, code):
    response = api.post("/api/indicators/import", json=body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert api.listed_ids() == []


def test_import_of_500_is_accepted(api):
    items = [NEW | {"indicatorValue": f"10.0.{i // 250}.{i % 250}"} for i in range(500)]

    response = api.post("/api/indicators/import", json={"Indicators": items})

    assert response.status_code == 200
    assert not any(r["isFailed"] for r in response.json()["value"])
    assert len(api.listed_ids()) == 500


def test_a_full_tenant_refuses_new_indicators_but_allows_updates(api, emulator, row):
    emulator.load([row(i, indicatorValue=f"v{i}") for i in range(1, 15_001)])

    refused = api.post("/api/indicators", json=NEW)
    updated = api.post("/api/indicators", json=NEW | {"indicatorValue": "v9"})

    assert refused.status_code == 400
    assert updated.json()["id"] == "9"
