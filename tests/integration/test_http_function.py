"""The HTTP function end to end: real azure.functions objects, Azurite,
the Defender emulator and the identity stand-ins."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import azure.functions as func
import pytest
from azure.data.tables import TableClient

from localdev.stack import LOCAL_CLIENT_ID, LOCAL_TENANT_ID, LocalStack
from shared.jobs import JobStore
from shared.service import get_service
from shared.storage import REQUEST

from .helpers import batch_calls, body_of, get, poll_until_done, post

pytestmark = pytest.mark.integration


def present_ids(stack: LocalStack) -> set[int]:
    assert stack.emulator is not None
    return {int(i["id"]) for i in stack.emulator.emulator.indicators()}


def test_mixed_ids_are_deleted_and_reported(
    stack: LocalStack, tenant: list[dict[str, Any]]
) -> None:
    wanted = [int(i["id"]) for i in tenant[:700]]
    entries: list[Any] = [str(i) for i in wanted[:350]] + wanted[350:]
    entries += [f" {wanted[0]} ", wanted[1], "99999999"]

    response = post({"IndicatorIds": entries, "requestedBy": "t", "reason": "r"})

    assert response.status_code == 200
    status = body_of(response)
    assert status["runtimeStatus"] == "Completed"
    output = status["output"]
    assert output["counts"] == {
        "requested": 701,
        "deleted": 700,
        "notFound": 1,
        "forbidden": 0,
        "failed": 0,
    }
    assert output["notFound"] == ["99999999"]
    assert not set(wanted) & present_ids(stack)
    assert len(present_ids(stack)) == len(tenant) - 700
    assert status["input"]["requestedBy"] == "t"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"IndicatorIds": ["1", "x", -3]}, "IndicatorIds[1]"),
        ({"IndicatorIds": []}, "empty"),
        ({}, "IndicatorIds is required"),
        ({"indicatorIds": ["1"]}, "did you mean 'IndicatorIds'"),
        ([1, 2], "must be a JSON object"),
        ({"IndicatorIds": "1,2"}, "array"),
        ({"IndicatorIds": ["1"], "reason": 5}, "reason must be a string"),
    ],
)
def test_bad_requests_answer_400_and_delete_nothing(
    stack: LocalStack, tenant: list[dict[str, Any]], body: Any, fragment: str
) -> None:
    response = post(body)

    assert response.status_code == 400
    text = response.get_body().decode()
    assert fragment in text
    assert "Traceback" not in text
    assert stack.emulator is not None
    assert batch_calls(stack.emulator.emulator.calls()) == []
    assert len(present_ids(stack)) == len(tenant)


def test_malformed_json_says_where(tenant: list[dict[str, Any]]) -> None:
    response = post(None, raw=b'{"IndicatorIds": [1, 2')

    assert response.status_code == 400
    assert "line 1 column" in body_of(response)["error"]["message"]


def test_wrong_content_type_answers_415(tenant: list[dict[str, Any]]) -> None:
    response = post(None, raw=b"1,2", headers={"Content-Type": "text/csv"})

    assert response.status_code == 415


def test_body_past_the_cap_answers_413(tenant: list[dict[str, Any]]) -> None:
    response = post(None, raw=b'{"IndicatorIds": ["' + b"1" * 2_000_000 + b'"]}')

    assert response.status_code == 413


def test_repeat_with_the_same_idempotency_key_returns_the_same_job(
    stack: LocalStack, tenant: list[dict[str, Any]]
) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    ids = [i["id"] for i in tenant[:10]]

    first = body_of(post({"IndicatorIds": ids}, headers=key))
    assert stack.emulator is not None
    calls_after_first = len(stack.emulator.emulator.calls())
    second = body_of(post({"IndicatorIds": ids}, headers=key))

    assert first["id"] == second["id"]
    assert second["output"]["counts"]["deleted"] == 10
    assert len(stack.emulator.emulator.calls()) == calls_after_first


def test_a_retry_may_reorder_ids_and_reword_its_reason(
    tenant: list[dict[str, Any]],
) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    ids = [i["id"] for i in tenant[:3]]

    first = body_of(post({"IndicatorIds": ids, "reason": "first try"}, headers=key))
    again = post({"IndicatorIds": ids[::-1], "reason": "retry"}, headers=key)

    assert again.status_code == 200
    assert body_of(again)["id"] == first["id"]


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ({"dryRun": True}, {}),
        ({}, {"extra": True}),
    ],
    ids=["a dry run's key reused for a real delete", "a key reused for other IDs"],
)
def test_a_key_reused_for_a_different_request_answers_409_and_deletes_nothing(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    first: dict[str, Any],
    then: dict[str, Any],
) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    ids = [i["id"] for i in tenant[:2]]
    extra = tenant[2]["id"]
    post({"IndicatorIds": ids, **first}, headers=key)
    left = present_ids(stack)

    body = {"IndicatorIds": [*ids, extra] if then else ids}
    response = post(body, headers=key)

    assert response.status_code == 409
    error = body_of(response)["error"]
    assert error["code"] == "IdempotencyKeyReused"
    assert "a new key" in error["message"]
    assert present_ids(stack) == left


def test_request_id_field_also_makes_a_repeat_harmless(
    tenant: list[dict[str, Any]],
) -> None:
    body = {"IndicatorIds": [tenant[0]["id"]], "requestId": uuid.uuid4().hex}

    first = body_of(post(body))
    second = body_of(post(body))

    assert first["id"] == second["id"]


def test_slow_job_answers_202_and_its_status_url_finishes_it(
    monkeypatch: pytest.MonkeyPatch, tenant: list[dict[str, Any]]
) -> None:
    monkeypatch.setenv("SYNC_WAIT_SECONDS", "0")
    ids = [i["id"] for i in tenant[:1200]]

    response = post({"IndicatorIds": ids}, params={"code": "the-key"})

    assert response.status_code == 202
    location = response.headers["Location"]
    assert location.endswith("?code=the-key")
    assert response.headers["Retry-After"].isdigit()
    job_id = body_of(response)["id"]
    assert f"/batch-delete/{job_id}?" in location

    for _ in range(20):
        polled = get(job_id, params={"code": "the-key"})
        if polled.status_code == 200:
            break
        assert polled.status_code == 202
    assert polled.status_code == 200
    assert body_of(polled)["output"]["counts"]["deleted"] == 1200


def test_unknown_job_answers_404(tenant: list[dict[str, Any]]) -> None:
    assert get(uuid.uuid4().hex).status_code == 404
    assert get("../../etc").status_code == 404


def test_recent_jobs_are_listed(tenant: list[dict[str, Any]]) -> None:
    job_id = body_of(post({"IndicatorIds": [tenant[0]["id"]]}))["id"]

    listed = body_of(get())["jobs"]

    assert job_id in [j["id"] for j in listed]


@pytest.mark.parametrize(
    ("params", "place"),
    [
        ({"status": "Done"}, "status"),
        ({"top": "0"}, "top"),
        ({"since": "yesterday"}, "since"),
        ({"foo": "bar"}, "foo"),
    ],
)
def test_a_bad_job_list_filter_is_named_as_the_problems_place(
    stack: LocalStack, params: dict[str, str], place: str
) -> None:
    response = get(params=params)

    assert response.status_code == 400
    problems = body_of(response)["error"]["problems"]
    assert [p["where"] for p in problems] == [place]


@pytest.mark.parametrize("behaviour", ["none", "found"])
def test_404_batches_end_right_under_either_behaviour(
    stack: LocalStack, tenant: list[dict[str, Any]], behaviour: str
) -> None:
    assert stack.emulator is not None
    stack.emulator.emulator.configure(partial_failure=behaviour)
    ids = [int(i["id"]) for i in tenant[:40]]

    output = body_of(post({"IndicatorIds": [*ids, 98765432]}))["output"]

    assert not set(ids) & present_ids(stack)
    assert "98765432" in output["notFound"]
    deleted = set(map(int, output["deleted"]))
    assert deleted | set(map(int, output["notFound"])) == {*ids, 98765432}
    if behaviour == "none":
        assert deleted == set(ids)


@pytest.mark.parametrize("behaviour", ["none", "found"])
def test_forbidden_ids_are_isolated_and_the_rest_deleted(
    stack: LocalStack, tenant: list[dict[str, Any]], behaviour: str
) -> None:
    assert stack.emulator is not None
    stack.emulator.emulator.configure(
        partial_failure=behaviour,
        exposure={LOCAL_CLIENT_ID: frozenset({"4127", "4131", "4140", "4152"})},
    )
    chosen = tenant[:300]
    blocked = {int(i["id"]) for i in chosen if "4133" in i["rbacGroupIds"]}
    assert blocked, "the sample should hold Domain Controllers indicators"

    output = body_of(post({"IndicatorIds": [i["id"] for i in chosen]}))["output"]

    assert {int(f["id"]) for f in output["forbidden"]} == blocked
    assert all(f["code"] == "Forbidden" and f["target"] for f in output["forbidden"])
    assert present_ids(stack) & {int(i["id"]) for i in chosen} == blocked


def test_past_the_waiting_callers_a_post_is_answered_at_once(
    monkeypatch: pytest.MonkeyPatch, stack: LocalStack, tenant: list[dict[str, Any]]
) -> None:
    # A worker of two threads: one caller may wait.
    monkeypatch.setenv("PYTHON_THREADPOOL_THREAD_COUNT", "2")
    # A service of its own, whose batches linger long enough for the first
    # caller to be still waiting when the second arrives.
    monkeypatch.setenv("BATCH_LINGER_SECONDS", "3")
    first_id, second_id = (int(i["id"]) for i in tenant[:2])
    answers: list[func.HttpResponse] = []
    waiting = threading.Thread(
        target=lambda: answers.append(post({"IndicatorIds": [first_id]}))
    )
    waiting.start()
    service = get_service(patience=REQUEST)
    while service.waiting_callers == 0:
        assert waiting.is_alive(), "the first caller did not wait"
        time.sleep(0.05)

    second = post({"IndicatorIds": [second_id]})
    waiting.join(30)

    # The second caller is not held: a 202 at once, its job done regardless.
    assert second.status_code == 202
    assert second.headers["Location"].endswith(body_of(second)["id"])
    assert [a.status_code for a in answers] == [200]
    polled = poll_until_done(body_of(second)["id"])
    assert polled.status_code == 200
    assert body_of(polled)["output"]["deleted"] == [str(second_id)]
    assert not {first_id, second_id} & present_ids(stack)


def test_jobs_packed_together_send_a_shared_id_once(
    stack: LocalStack, tenant: list[dict[str, Any]], job_store: JobStore
) -> None:
    a, b, shared_id = (int(i["id"]) for i in tenant[:3])
    first, _ = job_store.create([a, shared_id])
    second, _ = job_store.create([shared_id, b])
    assert stack.emulator is not None
    calls_before = len(stack.emulator.emulator.calls())

    get_service().worker.drain(deadline=time.time() + 30)

    sent = batch_calls(stack.emulator.emulator.calls()[calls_before:])
    assert sent, "the jobs were not sent"
    for call in sent:
        assert len(call["indicatorIds"]) == len(set(call["indicatorIds"]))
    for job in (first, second):
        (piece,) = job_store.pieces_of(job)
        assert piece.done
        assert shared_id in piece.outcome.deleted
    assert not {a, b, shared_id} & present_ids(stack)


SLOW_CALL_S = 6.0


def test_a_slow_defender_delays_the_work_but_not_the_answer(
    monkeypatch: pytest.MonkeyPatch, stack: LocalStack, tenant: list[dict[str, Any]]
) -> None:
    monkeypatch.setenv("SYNC_WAIT_SECONDS", "1")
    monkeypatch.setenv("BATCH_LINGER_SECONDS", "0")
    assert stack.emulator is not None
    stack.emulator.emulator.set_faults(latency_s=SLOW_CALL_S)
    wanted = int(tenant[0]["id"])
    try:
        started = time.monotonic()
        response = post({"IndicatorIds": [wanted]})
        answered_after = time.monotonic() - started
    finally:
        stack.emulator.emulator.set_faults(latency_s=0.0)

    # Answered at its deadline, while the call it started was still out.
    assert response.status_code == 202
    assert answered_after < SLOW_CALL_S
    polled = poll_until_done(body_of(response)["id"])
    assert polled.status_code == 200
    assert body_of(polled)["output"]["deleted"] == [str(wanted)]


THROTTLED_S = 30


def test_a_job_waiting_out_a_429_says_so_in_its_status(
    monkeypatch: pytest.MonkeyPatch,
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    state_table: TableClient,
) -> None:
    monkeypatch.setenv("SYNC_WAIT_SECONDS", "1")
    monkeypatch.setenv("BATCH_LINGER_SECONDS", "0")
    assert stack.emulator is not None
    emulator = stack.emulator.emulator
    faults_before = emulator.set_faults()
    emulator.set_faults(force_429=1, retry_after_s=THROTTLED_S)
    wanted = int(tenant[0]["id"])
    try:
        job_id = body_of(post({"IndicatorIds": [wanted]}))["id"]
        for _ in range(10):
            polled = body_of(get(job_id))
            if polled["customStatus"]["lastError"]:
                break
        assert "throttling the tenant" in polled["customStatus"]["lastError"]
        assert polled["output"] is None
    finally:
        emulator.configure(faults=faults_before)
        # The 429 made every caller of the tenant wait; later tests need not.
        state_table.delete_entity(LOCAL_TENANT_ID.lower(), "budget-batch_delete")

    finished = poll_until_done(job_id)
    assert body_of(finished)["output"]["deleted"] == [str(wanted)]
