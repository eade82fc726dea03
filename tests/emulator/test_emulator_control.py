"""The /_emulator/ endpoints that inspect and steer the emulator."""

from __future__ import annotations

import pytest


def _patch(control, body):
    return control.session.patch(
        f"{control.base_url}/_emulator/config", json=body, timeout=10
    )


def test_the_tenant_can_be_replaced_and_read_back(control, api, row):
    loaded = control.post("/_emulator/indicators", json={"value": [row(3), row(1)]})

    body = control.get("/_emulator/indicators").json()

    assert loaded.json() == {"count": 2}
    assert [r["id"] for r in body["value"]] == ["1", "3"]
    assert body["@odata.context"].endswith("/api/$metadata#Indicators")
    assert api.listed_ids() == ["1", "3"]


@pytest.mark.parametrize(
    "body",
    [
        {"values": []},
        {"value": "x"},
        {"value": [1]},
        {"value": [{"id": "abc"}]},
        {"value": [{"id": "1"}, {"id": "1"}]},
        {"value": [{"id": "1", "expirationTime": "never"}]},
    ],
)
def test_a_bad_tenant_is_refused_and_the_old_one_kept(control, tenant, row, body):
    tenant(row(1))

    response = control.post("/_emulator/indicators", json=body)

    assert response.status_code == 400
    assert [r["id"] for r in control.get("/_emulator/indicators").json()["value"]] == [
        "1"
    ]


def test_seed_reloads_the_full_tenant(control, tenant, row):
    tenant(row(1))

    response = control.post("/_emulator/seed")

    assert response.json() == {"count": 15_000}
    assert len(control.get("/_emulator/indicators").json()["value"]) == 15_000


def test_the_call_log_records_each_api_call(
    control, api, client_for, tenant, row, app_id, tenant_id
):
    tenant(row(1))
    api.batch_delete(["1", "2", "3"])
    api.list(**{"$top": "5"})
    client_for(lifetime_s=-5).delete("/api/indicators/1")

    calls = control.get("/_emulator/calls").json()["value"]

    assert [(c["method"], c["path"], c["status"], c["api"]) for c in calls] == [
        ("POST", "/api/indicators/BatchDelete", 404, "batch_delete"),
        ("GET", "/api/indicators", 200, "list"),
        ("DELETE", "/api/indicators/1", 401, "delete"),
    ]
    assert [c["ids"] for c in calls] == [3, None, None]
    assert (calls[0]["app"], calls[0]["tenant"]) == (app_id, tenant_id)
    assert calls[2]["app"] is None
    assert all(c["time"].endswith("Z") for c in calls)


def test_the_call_log_can_be_cleared(control, api, emulator):
    api.list()

    assert control.delete("/_emulator/calls").status_code == 204
    assert control.get("/_emulator/calls").json() == {"value": []}
    assert emulator.calls() == []


def test_config_shows_limits_faults_and_exposure(control):
    config = control.get("/_emulator/config").json()

    assert set(config) == {
        "accepted_audiences",
        "batch_delete_limits",
        "list_limits",
        "import_limits",
        "exposure",
        "partial_failure",
        "faults",
    }
    assert config["partial_failure"] == "none"
    assert config["faults"]["force_429"] == 0


def test_config_patch_changes_behaviour(control, api, tenant, row, app_id):
    tenant(row(1, rbacGroupIds=["4152"]), row(2))

    patched = _patch(
        control,
        {
            "partial_failure": "found",
            "exposure": {app_id: ["4127"]},
            "batch_delete_limits": "5/1s",
        },
    )

    assert patched.status_code == 200
    assert patched.json()["exposure"] == {app_id: ["4127"]}
    assert api.batch_delete(["1", "2"]).status_code == 403
    assert api.listed_ids() == ["1"]


@pytest.mark.parametrize(
    "body",
    [
        {"colour": "blue"},
        {"faults": {"explode": True}},
        {"faults": {"error_rate": "high"}},
        {"faults": {"error_after_commit": 1}},
        {"faults": {"force_429": 1.5}},
        {"faults": []},
        {"partial_failure": "some"},
        {"list_limits": "lots"},
        {"list_limits": 5},
        {"exposure": ["x"]},
        {"accepted_audiences": "https://api.security.microsoft.com"},
    ],
)
def test_config_patch_refuses_unknown_keys_and_bad_values(control, body):
    before = control.get("/_emulator/config").json()

    response = _patch(control, body)

    assert response.status_code == 400
    assert response.json()["error"]["message"]
    assert control.get("/_emulator/config").json() == before


def test_unknown_paths_and_methods_get_defenders_error_body(api):
    missing = api.get("/api/machines")
    wrong_method = api.get("/api/indicators/BatchDelete")

    assert (missing.status_code, missing.json()["error"]["code"]) == (
        404,
        "ResourceNotFound",
    )
    assert wrong_method.status_code == 405
    assert "error" in wrong_method.json()
