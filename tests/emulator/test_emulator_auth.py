"""Every /api/ call needs a valid token for an accepted audience and role."""

from __future__ import annotations

import logging

import pytest

from localdev.tokens import TokenSigner

NEW_AUDIENCE = "https://api.security.microsoft.com"
MISSING_ROLES = (
    "Missing application roles. API required roles: Ti.ReadWrite.All, Ti.ReadWrite"
)


def _error(response):
    return response.json()["error"]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer not.a.jwt",
        "Token x",
    ],
)
def test_missing_or_malformed_token_answers_401(api, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    api.session.headers.pop("Authorization")

    response = api.get("/api/indicators", headers=headers)

    assert response.status_code == 401
    assert _error(response)["code"] == "Unauthorized"


def test_token_signed_with_another_key_answers_401(client_for, running):
    forged, _ = TokenSigner().issue(
        audience=NEW_AUDIENCE, tenant_id="t", app_id="a", roles=["Ti.ReadWrite.All"]
    )
    api = client_for()
    api.session.headers["Authorization"] = f"Bearer {forged}"

    assert api.batch_delete(["1"]).status_code == 401


def test_expired_token_answers_401(client_for):
    api = client_for(lifetime_s=-5)

    response = api.list()

    assert response.status_code == 401
    assert _error(response)["code"] == "Unauthorized"


@pytest.mark.parametrize(
    "audience", ["https://api.securitycenter.microsoft.com", NEW_AUDIENCE]
)
def test_both_defender_audiences_are_accepted_by_default(client_for, audience):
    assert client_for(audience=audience).list().status_code == 200


def test_another_audience_answers_403(client_for):
    response = client_for(audience="https://graph.microsoft.com").list()

    assert response.status_code == 403
    assert _error(response)["code"] == "Forbidden"


def test_audiences_can_be_narrowed(client_for, emulator):
    emulator.configure(accepted_audiences=(NEW_AUDIENCE,))

    legacy = client_for(audience="https://api.securitycenter.microsoft.com")

    assert legacy.list().status_code == 403
    assert client_for(audience=NEW_AUDIENCE).list().status_code == 200


@pytest.mark.parametrize("roles", [(), ("Machine.Read.All",), ("Ti.Read.All",)])
def test_token_without_the_indicator_role_answers_403(client_for, roles):
    response = client_for(roles=roles).batch_delete(["1"])

    assert response.status_code == 403
    assert _error(response) | {"target": None} == {
        "code": "Forbidden",
        "message": MISSING_ROLES,
        "target": None,
    }


def test_legacy_role_alone_is_accepted(client_for):
    assert client_for(roles=("Ti.ReadWrite",)).list().status_code == 200


def test_calls_that_fail_auth_do_not_use_the_budget(client_for, emulator):
    emulator.configure(list_limits="1/60s")
    client_for(lifetime_s=-5).list()
    client_for(roles=()).list()
    client_for(audience="https://example.com").list()

    assert client_for().list().status_code == 200
    assert client_for().list().status_code == 429


def test_tokens_never_reach_the_log(client_for, caplog):
    good, expired = client_for(), client_for(lifetime_s=-5)
    caplog.set_level(logging.DEBUG)

    good.batch_delete(["1"])
    expired.list()

    tokens = [c.session.headers["Authorization"].split()[1] for c in (good, expired)]
    messages = [record.getMessage() for record in caplog.records]
    assert any("/api/indicators" in message for message in messages)
    assert not [m for m in messages for t in tokens if t in m]


def test_the_control_endpoints_need_no_token(control):
    assert control.get("/_emulator/config").status_code == 200
