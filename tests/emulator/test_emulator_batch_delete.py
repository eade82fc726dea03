"""BatchDelete answers every documented status, in Defender's order."""

from __future__ import annotations

import uuid

import pytest

SERVERS = {"rbacGroupNames": ["Servers"], "rbacGroupIds": ["4127"]}
KIOSKS = {"rbacGroupNames": ["Kiosks"], "rbacGroupIds": ["4152"]}


def _remaining(emulator):
    return [r["id"] for r in emulator.indicators()]


def _assert_error(response, status, code):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    uuid.UUID(error["target"])


def test_existing_ids_are_deleted_with_204_and_no_body(api, emulator, tenant, row):
    tenant(row(1), row(2), row(3))

    response = api.batch_delete(["1", "3"])

    assert response.status_code == 204
    assert response.content == b""
    assert _remaining(emulator) == ["2"]


def test_integer_ids_and_leading_zeros_are_accepted(api, emulator, tenant, row):
    tenant(row(7), row(8))

    assert api.batch_delete([7, "008"]).status_code == 204
    assert _remaining(emulator) == []


def test_500_ids_are_accepted(api, emulator, tenant, row):
    tenant(*(row(i) for i in range(1, 501)))

    assert api.batch_delete([str(i) for i in range(1, 501)]).status_code == 204
    assert _remaining(emulator) == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "MissingRequiredParameter"),
        ({"indicatorIds": ["1"]}, "MissingRequiredParameter"),
        ({"IndicatorIds": "1"}, "InvalidRequestBody"),
        ({"IndicatorIds": None}, "InvalidRequestBody"),
        ([["1"]], "InvalidRequestBody"),
        ({"IndicatorIds": []}, "InvalidInput"),
    ],
)
def test_malformed_body_answers_400(api, emulator, tenant, row, body, code):
    tenant(row(1))

    response = api.post("/api/indicators/BatchDelete", json=body)

    _assert_error(response, 400, code)
    assert _remaining(emulator) == ["1"]


def test_more_than_500_ids_answers_400_maximum_batch_size(api, tenant, row):
    tenant(row(1))

    response = api.batch_delete([str(i) for i in range(1, 502)])

    _assert_error(response, 400, "MaximumBatchSizeExceeded")


@pytest.mark.parametrize("bad_id", ["abc", "", "1.5", "-3", -3, 1.5, True, None, ["1"]])
def test_an_invalid_id_answers_400_and_deletes_nothing(
    api, emulator, tenant, row, bad_id
):
    tenant(row(1))

    response = api.batch_delete(["1", bad_id])

    _assert_error(response, 400, "InvalidInput")
    assert _remaining(emulator) == ["1"]


def test_invalid_id_is_reported_before_missing_ids(api, tenant, row):
    tenant(row(1))

    _assert_error(api.batch_delete(["999", "x"]), 400, "InvalidInput")


def test_invalid_json_answers_400(api):
    response = api.post(
        "/api/indicators/BatchDelete",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )

    _assert_error(response, 400, "InvalidRequestBody")


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded"]
)
def test_a_body_without_json_content_type_is_refused(
    api, emulator, tenant, row, content_type
):
    tenant(row(1))
    headers = {} if content_type is None else {"Content-Type": content_type}

    response = api.post(
        "/api/indicators/BatchDelete", data=b'{"IndicatorIds":["1"]}', headers=headers
    )

    assert response.status_code == 415
    assert "application/json" in response.json()["error"]["message"]
    assert _remaining(emulator) == ["1"]


def test_json_content_type_with_charset_is_accepted(api, emulator, tenant, row):
    tenant(row(1))

    response = api.post(
        "/api/indicators/BatchDelete",
        data=b'{"IndicatorIds":["1"]}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )

    assert response.status_code == 204


def test_one_missing_id_answers_404_and_deletes_nothing_by_default(
    api, emulator, tenant, row
):
    tenant(row(1), row(2))

    _assert_error(api.batch_delete(["1", "99", "2"]), 404, "NotFound")
    assert _remaining(emulator) == ["1", "2"]


def test_found_mode_deletes_the_existing_ids_then_answers_404(
    api, emulator, tenant, row
):
    emulator.configure(partial_failure="found")
    tenant(row(1), row(2), row(3))

    _assert_error(api.batch_delete(["1", "99", "2"]), 404, "NotFound")
    assert _remaining(emulator) == ["3"]


def test_an_id_in_an_unexposed_group_answers_403(api, emulator, tenant, row, app_id):
    emulator.configure(exposure={app_id: frozenset({"4127"})})
    tenant(row(1, **SERVERS), row(2, **KIOSKS), row(3))

    _assert_error(api.batch_delete(["1", "2", "3"]), 403, "Forbidden")
    assert _remaining(emulator) == ["1", "2", "3"]


def test_found_mode_deletes_the_allowed_ids_then_answers_403(
    api, emulator, tenant, row, app_id
):
    emulator.configure(partial_failure="found", exposure={app_id: {"4127"}})
    tenant(row(1, **SERVERS), row(2, **KIOSKS), row(3))

    _assert_error(api.batch_delete(["1", "2", "3"]), 403, "Forbidden")
    assert _remaining(emulator) == ["2"]


def test_missing_ids_win_over_device_groups(api, emulator, tenant, row, app_id):
    emulator.configure(partial_failure="found", exposure={app_id: frozenset()})
    tenant(row(1, **KIOSKS), row(2))

    _assert_error(api.batch_delete(["1", "2", "99"]), 404, "NotFound")
    assert _remaining(emulator) == ["1"]


def test_an_app_exposed_to_every_group_deletes_anything(
    api, emulator, tenant, row, app_id
):
    emulator.configure(exposure={app_id: None, "someone-else": frozenset()})
    tenant(row(1, **KIOSKS), row(2, **SERVERS))

    assert api.batch_delete(["1", "2"]).status_code == 204


def test_a_repeated_id_is_deleted_once(api, emulator, tenant, row):
    tenant(row(1), row(2))

    assert api.batch_delete(["1", "1"]).status_code == 204
    assert _remaining(emulator) == ["2"]


def test_deleting_twice_answers_404_the_second_time(api, tenant, row):
    tenant(row(1))

    assert api.batch_delete(["1"]).status_code == 204
    _assert_error(api.batch_delete(["1"]), 404, "NotFound")


def test_single_delete_answers_204_then_404(api, emulator, tenant, row):
    tenant(row(5), row(6))

    assert api.delete("/api/indicators/5").status_code == 204
    _assert_error(api.delete("/api/indicators/5"), 404, "NotFound")
    assert _remaining(emulator) == ["6"]


def test_single_delete_checks_the_id_and_device_group(
    api, emulator, tenant, row, app_id
):
    emulator.configure(exposure={app_id: frozenset()})
    tenant(row(5, **KIOSKS))

    _assert_error(api.delete("/api/indicators/abc"), 400, "InvalidInput")
    _assert_error(api.delete("/api/indicators/5"), 403, "Forbidden")


def test_each_error_has_a_fresh_target(api):
    first = api.batch_delete([]).json()["error"]["target"]
    second = api.batch_delete([]).json()["error"]["target"]

    assert first != second
