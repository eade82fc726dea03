"""Injected trouble: latency, 500/503, work done before a 500, dropped
connections and forced 429s. Faults touch /api/ calls only."""

from __future__ import annotations

import time
import uuid

import pytest
import requests


def _ids(emulator):
    return [r["id"] for r in emulator.indicators()]


def test_error_rate_one_answers_500_or_503_and_changes_nothing(
    api, emulator, tenant, row
):
    tenant(row(1), row(2))
    emulator.set_faults(error_rate=1.0)

    responses = [api.batch_delete(["1"]) for _ in range(12)]

    assert {r.status_code for r in responses} == {500, 503}
    for response in responses:
        error = response.json()["error"]
        assert error["code"] == "InternalServerError"
        uuid.UUID(error["target"])
    assert _ids(emulator) == ["1", "2"]


def test_the_fault_sequence_repeats_for_the_same_seed(api, emulator):
    emulator.set_faults(error_rate=0.5, seed=7)
    first = [api.list().status_code for _ in range(16)]

    emulator.set_faults(seed=7)
    second = [api.list().status_code for _ in range(16)]

    assert first == second
    assert 200 in first and {500, 503} & set(first)


def test_after_commit_a_faulted_batch_delete_deletes_then_answers_500(
    api, emulator, tenant, row
):
    tenant(row(1), row(2), row(3))
    emulator.set_faults(error_rate=1.0, error_after_commit=True)

    response = api.batch_delete(["1", "2"])

    assert response.status_code == 500
    assert _ids(emulator) == ["3"]
    emulator.set_faults(error_rate=0.0)
    assert api.batch_delete(["1", "2"]).status_code == 404


def test_a_dropped_call_closes_the_connection_without_an_answer(
    api, emulator, tenant, row
):
    tenant(row(1))
    emulator.set_faults(drop_rate=1.0)

    with pytest.raises(requests.ConnectionError):
        api.batch_delete(["1"])

    assert _ids(emulator) == ["1"]
    call = emulator.calls()[-1]
    assert (call["status"], call["fault"], call["ids"]) == (None, "drop", 1)


def test_a_dropped_call_after_commit_did_its_work(api, emulator, tenant, row):
    tenant(row(1), row(2))
    emulator.set_faults(drop_rate=1.0, error_after_commit=True)

    with pytest.raises(requests.ConnectionError):
        api.batch_delete(["1"])

    assert _ids(emulator) == ["2"]


def test_the_server_keeps_serving_after_a_drop(api, emulator):
    emulator.set_faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        api.list()

    emulator.set_faults(drop_rate=0.0)

    assert api.list().status_code == 200


def test_forced_429s_come_first_then_calls_pass(api, emulator):
    emulator.configure(list_limits="1/60s")
    emulator.set_faults(force_429=2, retry_after_s=7)

    forced = [api.list() for _ in range(2)]

    assert [(r.status_code, r.headers["Retry-After"]) for r in forced] == [
        (429, "7"),
        (429, "7"),
    ]
    assert forced[0].json()["error"]["code"] == "TooManyRequests"
    assert api.list().status_code == 200  # the forced ones used no budget
    assert emulator.config.faults.force_429 == 0


def test_latency_is_added_to_each_call(api, emulator):
    emulator.set_faults(latency_s=0.2)

    started = time.perf_counter()
    api.list()

    assert time.perf_counter() - started >= 0.2


def test_faults_leave_the_control_endpoints_alone(control, emulator):
    emulator.set_faults(error_rate=1.0, drop_rate=1.0, force_429=5)

    assert control.get("/_emulator/config").status_code == 200
    assert control.get("/_emulator/indicators").status_code == 200


def test_faults_can_be_set_over_http(api, control):
    patched = control.session.patch(
        f"{control.base_url}/_emulator/config",
        json={"faults": {"error_rate": 1, "seed": 3}},
        timeout=10,
    )

    assert patched.json()["faults"]["error_rate"] == 1
    assert api.list().status_code in (500, 503)


def test_bad_fault_values_are_refused(emulator):
    with pytest.raises(ValueError, match="error_rate"):
        emulator.set_faults(error_rate=1.5)
