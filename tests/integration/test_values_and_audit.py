"""Unblock by value, dry runs, caps, tenants and the audit trail."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from typing import Any

import pytest

from localdev.stack import LOCAL_CLIENT_ID, LocalStack
from shared.jobs import JobStore
from shared.service import get_service
from shared.storage import open_state_table

from .helpers import batch_calls, body_of, get, post, tick

pytestmark = pytest.mark.integration


def present(stack: LocalStack) -> dict[str, dict[str, Any]]:
    assert stack.emulator is not None
    return {i["id"]: i for i in stack.emulator.emulator.indicators()}


def test_a_value_carried_twice_removes_both_indicators(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    seed_indicators: list[dict[str, Any]],
) -> None:
    assert stack.emulator is not None
    counts = Counter(i["indicatorValue"] for i in seed_indicators)
    twice = next(v for v, n in counts.items() if n == 2)
    rows = [i for i in seed_indicators if i["indicatorValue"] == twice]
    others = [i for i in seed_indicators[:500] if i["indicatorValue"] != twice]
    stack.emulator.emulator.load(others + rows)

    status = body_of(post({"IndicatorValues": [twice, "198.51.100.250"]}))

    output = status["output"]
    assert sorted(output["deleted"]) == sorted(r["id"] for r in rows)
    assert output["values"]["unmatched"] == ["198.51.100.250"]
    assert sorted(output["values"]["matched"][twice]) == sorted(r["id"] for r in rows)
    assert not {r["id"] for r in rows} & set(present(stack))
    assert len(present(stack)) == len(others)


def test_hash_values_match_whatever_their_case(
    stack: LocalStack, tenant: list[dict[str, Any]]
) -> None:
    row = next(i for i in tenant if i["indicatorType"] == "FileSha256")

    status = body_of(
        post(
            {
                "IndicatorValues": [row["indicatorValue"].upper()],
                "indicatorType": "FileSha256",
            }
        )
    )

    assert row["id"] in status["output"]["deleted"]


def test_a_type_filter_leaves_other_types_alone(
    stack: LocalStack, tenant: list[dict[str, Any]]
) -> None:
    row = next(i for i in tenant if i["indicatorType"] == "DomainName")

    status = body_of(
        post({"IndicatorValues": [row["indicatorValue"]], "indicatorType": "Url"})
    )

    assert status["output"]["values"]["unmatched"] == [row["indicatorValue"]]
    assert row["id"] in present(stack)


def test_dry_run_previews_and_deletes_nothing(
    stack: LocalStack, tenant: list[dict[str, Any]]
) -> None:
    ids = [tenant[0]["id"], tenant[1]["id"], "99999991"]

    response = post({"IndicatorIds": ids, "dryRun": True, "requestedBy": "preview"})

    assert response.status_code == 200
    document = body_of(response)
    preview = document["output"]
    assert preview["dryRun"] is True
    assert [r["id"] for r in preview["wouldDelete"]] == ids[:2]
    assert all(r["rule"] == "requested ID" for r in preview["wouldDelete"])
    assert preview["notFound"]["ids"] == ["99999991"]
    assert stack.emulator is not None
    assert batch_calls(stack.emulator.emulator.calls()) == []
    assert len(present(stack)) == len(tenant)
    assert document["input"]["dryRun"] is True


def test_per_request_cap_refuses_and_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, stack: LocalStack, tenant: list[dict[str, Any]]
) -> None:
    monkeypatch.setenv("MAX_IDS_PER_REQUEST", "10")

    response = post({"IndicatorIds": [i["id"] for i in tenant[:11]]})

    assert response.status_code == 400
    assert "MAX_IDS_PER_REQUEST" in body_of(response)["error"]["message"]
    assert len(present(stack)) == len(tenant)


def test_daily_cap_counts_every_caller_and_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, stack: LocalStack, tenant: list[dict[str, Any]]
) -> None:
    other = str(uuid.uuid4())
    assert stack.identity is not None
    stack.identity.register_app(
        other, LOCAL_CLIENT_ID, [stack.client_secret], ["Ti.ReadWrite.All"]
    )
    monkeypatch.setenv("DEFENDER_TENANT_IDS", other)
    monkeypatch.setenv("MAX_DELETES_PER_DAY", "5")

    first = post({"IndicatorIds": [i["id"] for i in tenant[:4]], "tenantId": other})
    second = post({"IndicatorIds": [i["id"] for i in tenant[4:6]], "tenantId": other})

    assert first.status_code == 200
    assert second.status_code == 429
    message = body_of(second)["error"]["message"]
    assert "MAX_DELETES_PER_DAY" in message and "1 more" in message


def test_a_tenant_outside_the_allow_list_is_refused(
    tenant: list[dict[str, Any]],
) -> None:
    response = post({"IndicatorIds": ["1"], "tenantId": str(uuid.uuid4())})

    assert response.status_code == 403
    assert "DEFENDER_TENANT_IDS" in body_of(response)["error"]["message"]


def test_one_tenants_job_is_invisible_to_another(
    monkeypatch: pytest.MonkeyPatch, stack: LocalStack, tenant: list[dict[str, Any]]
) -> None:
    other = str(uuid.uuid4())
    assert stack.identity is not None
    stack.identity.register_app(
        other, LOCAL_CLIENT_ID, [stack.client_secret], ["Ti.ReadWrite.All"]
    )
    monkeypatch.setenv("DEFENDER_TENANT_IDS", other)

    response = post({"IndicatorIds": [tenant[0]["id"]], "tenantId": other})
    job_id = body_of(response)["id"]

    assert f"tenantId={other}" in body_of(response)["statusQueryGetUri"]
    assert get(job_id).status_code == 404
    assert get(job_id, params={"tenantId": other}).status_code == 200
    assert job_id not in [j["id"] for j in body_of(get())["jobs"]]


def test_the_audit_record_says_who_asked_and_why(
    tenant: list[dict[str, Any]],
) -> None:
    body = {
        "IndicatorIds": [tenant[0]["id"]],
        "requestedBy": "playbook-unblock",
        "reason": "false positive",
        "incidentId": "4711",
        "incidentUrl": "https://portal.example/incidents/4711",
    }

    job_id = body_of(
        post(body, headers={"X-MS-CLIENT-PRINCIPAL-NAME": "soc@contoso.com"})
    )["id"]
    listed = body_of(get(params={"requestedBy": "playbook-unblock"}))["jobs"]

    record = next(j for j in listed if j["id"] == job_id)
    audit = record["input"]
    assert audit["incidentId"] == "4711"
    assert audit["incidentUrl"].endswith("/4711")
    assert audit["reason"] == "false positive"
    assert audit["caller"] == {"principalName": "soc@contoso.com"}
    assert all(j["input"]["requestedBy"] == "playbook-unblock" for j in listed)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"status": "Done"}, "status must be one of"),
        ({"top": "0"}, "top must be"),
        ({"since": "yesterday"}, "ISO 8601"),
        ({"colour": "red"}, "unknown query parameter"),
    ],
)
def test_bad_job_filters_answer_400(params: dict[str, str], fragment: str) -> None:
    response = get(params=params)

    assert response.status_code == 400
    assert fragment in body_of(response)["error"]["message"]


def test_finished_jobs_past_retention_are_purged(
    monkeypatch: pytest.MonkeyPatch, tenant: list[dict[str, Any]]
) -> None:
    service = get_service()
    long_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).timestamp()
    table = open_state_table(service.settings)
    old_store = JobStore(table, service.tenant_id.lower(), clock=lambda: long_ago)
    old, _ = old_store.create([], requested_by="old", finished=True)
    monkeypatch.setenv("AUDIT_RETENTION_DAYS", "2")

    tick()

    assert get_service().store.get(old.id) is None
