"""Limits, credentials and resumption, against the real local services."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import pytest
import requests

from localdev.stack import LOCAL_CLIENT_ID, LOCAL_TENANT_ID, SECRET_NAME, LocalStack
from shared.settings import parse_rate_limits

from .helpers import batch_calls, body_of, get, post, tick

pytestmark = pytest.mark.integration


def max_in_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    return max(
        (
            sum(1 for t in times[i:] if t < start + window_s)
            for i, start in enumerate(times)
        ),
        default=0,
    )


def call_times(calls: list[dict[str, Any]]) -> list[float]:
    return [dt.datetime.fromisoformat(c["time"]).timestamp() for c in calls]


def test_limits_are_never_exceeded_and_nothing_is_throttled(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, tenant: list[dict[str, Any]]
) -> None:
    monkeypatch.setenv("BATCH_DELETE_RATE_LIMITS", "3/1s,1500/120s")
    assert stack.emulator is not None
    stack.emulator.emulator.configure(batch_delete_limits="3/1s,1500/120s")
    ids = [i["id"] for i in tenant[:10]]

    for start in range(0, 10):
        post({"IndicatorIds": [ids[start]]})

    calls = batch_calls(stack.emulator.emulator.calls())
    assert len(calls) == 10
    assert all(c["status"] == 204 for c in calls)
    for limit in parse_rate_limits("3/1s"):
        assert max_in_window(call_times(calls), limit.window_s) <= limit.calls


def test_a_429_is_honoured_and_the_job_still_completes(
    stack: LocalStack, tenant: list[dict[str, Any]]
) -> None:
    assert stack.emulator is not None
    stack.emulator.emulator.set_faults(force_429=2, retry_after_s=1)
    ids = [i["id"] for i in tenant[:20]]

    status = body_of(post({"IndicatorIds": ids}))

    assert status["output"]["counts"]["deleted"] == 20
    statuses = [c["status"] for c in stack.emulator.emulator.calls()]
    assert statuses.count(429) == 2


def test_server_errors_are_retried_until_defender_confirms(
    stack: LocalStack, tenant: list[dict[str, Any]]
) -> None:
    assert stack.emulator is not None
    stack.emulator.emulator.set_faults(error_rate=0.5, error_after_commit=True, seed=3)
    ids = [int(i["id"]) for i in tenant[:1500]]

    status = body_of(post({"IndicatorIds": ids}))
    stack.emulator.emulator.set_faults(error_rate=0.0)
    for _ in range(10):
        if status["runtimeStatus"] in ("Completed", "Failed"):
            break
        status = body_of(get(status["id"]))

    output = status["output"]
    remaining = {int(i["id"]) for i in stack.emulator.emulator.indicators()}
    assert not set(ids) & remaining
    confirmed = {
        int(i)
        for call in batch_calls(stack.emulator.emulator.calls())
        if call["status"] == 204
        for i in call["indicatorIds"]
    }
    assert set(map(int, output["deleted"])) <= confirmed
    assert sorted(map(int, output["deleted"] + output["notFound"])) == sorted(ids)


def test_rotated_secret_is_picked_up_without_a_restart(
    stack: LocalStack, tenant: list[dict[str, Any]]
) -> None:
    assert stack.identity is not None
    new_secret = secrets.token_urlsafe(24)
    stack.identity.register_app(
        LOCAL_TENANT_ID,
        LOCAL_CLIENT_ID,
        [stack.client_secret],
        ["Ti.ReadWrite.All"],
        token_lifetime_s=30,
    )
    assert post({"IndicatorIds": [tenant[0]["id"]]}).status_code == 200

    stack.identity.set_secret(SECRET_NAME, new_secret)
    stack.identity.set_app_secrets(LOCAL_CLIENT_ID, [new_secret])
    try:
        status = body_of(post({"IndicatorIds": [tenant[1]["id"]]}))
    finally:
        # Put the stack's own secret back for the tests that follow.
        stack.identity.set_secret(SECRET_NAME, stack.client_secret)
        stack.identity.set_app_secrets(LOCAL_CLIENT_ID, [stack.client_secret])

    assert status["output"]["counts"]["deleted"] == 1


def test_vault_outage_delays_work_but_loses_nothing(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, tenant: list[dict[str, Any]]
) -> None:
    assert stack.identity is not None
    # A new configuration gets a new service, so no secret is cached yet.
    monkeypatch.setenv("DEFENDER_CLIENT_SECRET_NAME", SECRET_NAME)
    monkeypatch.setenv("BATCH_LINGER_SECONDS", "0.3")
    monkeypatch.setenv("SYNC_WAIT_SECONDS", "2")
    stack.identity.set_vault_available(False)
    try:
        first = post({"IndicatorIds": [tenant[0]["id"], tenant[1]["id"]]})
        assert first.status_code == 202
        status = body_of(first)
        # The outage shows in the job's status while it lasts.
        for _ in range(10):
            if status["customStatus"]["lastError"]:
                break
            status = body_of(get(status["id"]))
    finally:
        stack.identity.set_vault_available(True)

    assert status["output"] is None
    assert "Key Vault" in status["customStatus"]["lastError"]

    for _ in range(10):
        polled = get(status["id"])
        if polled.status_code == 200:
            break
    assert body_of(polled)["output"]["counts"]["deleted"] == 2


def test_the_timer_resumes_work_left_pending(
    monkeypatch: pytest.MonkeyPatch, stack: LocalStack, tenant: list[dict[str, Any]]
) -> None:
    monkeypatch.setenv("SYNC_WAIT_SECONDS", "0")
    ids = [i["id"] for i in tenant[:600]]
    job_id = body_of(post({"IndicatorIds": ids}))["id"]

    tick()

    monkeypatch.setenv("SYNC_WAIT_SECONDS", "20")
    status = body_of(get(job_id))
    assert status["runtimeStatus"] == "Completed"
    assert status["output"]["counts"]["deleted"] == 600


def test_missing_settings_fail_the_call_naming_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DEFENDER_TENANT_ID")
    monkeypatch.setenv("DEFENDER_API_URL", "http://api.example.com")

    response = post({"IndicatorIds": ["1"]})

    assert response.status_code == 500
    message = body_of(response)["error"]["message"]
    assert "DEFENDER_TENANT_ID" in message and "DEFENDER_API_URL" in message


def test_the_local_host_refuses_calls_without_the_function_key(
    stack: LocalStack, tenant: list[dict[str, Any]]
) -> None:
    assert stack.host is not None
    url = f"{stack.host.base_url}/indicators/batch-delete"
    body = {"IndicatorIds": [tenant[0]["id"]]}

    refused = requests.post(url, json=body, timeout=30)
    wrong = requests.post(url, json=body, headers={"x-functions-key": "no"}, timeout=30)
    accepted = requests.post(
        url, json=body, headers={"x-functions-key": stack.host.function_key}, timeout=60
    )

    assert refused.status_code == 401
    assert wrong.status_code == 401
    assert accepted.status_code == 200
    assert accepted.json()["output"]["counts"]["deleted"] == 1
