"""The identity stand-ins, driven by the real azure-identity and Key Vault SDKs."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.identity import (
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
)
from azure.keyvault.secrets import SecretClient

from localdev.identity import IdentityStandIns, start_identity
from localdev.keyvault import challenge_resource
from localdev.tokens import TokenSigner

TENANT = "5f0c2a4e-1b7d-4c53-9a61-3e8d2f7b9c10"
DEFENDER_SCOPE = "https://api.securitycenter.microsoft.com/.default"
DEFENDER_RESOURCE = "https://api.securitycenter.microsoft.com"
ROLES = ["Ti.ReadWrite.All"]
SECRET_NAME = "defender-client-secret"
TIMEOUT_S = 10
# Variables that would steer azure-identity away from the stand-ins (towards
# IMDS, a developer login or a proxy) if the machine running the tests has them.
_STEERING_PREFIXES = ("AZURE_", "MSI_", "IDENTITY_", "IMDS_", "MSAL_")
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(scope="module")
def signer() -> TokenSigner:
    return TokenSigner()


@pytest.fixture(scope="module")
def stand_ins(
    tmp_path_factory: pytest.TempPathFactory, signer: TokenSigner
) -> Iterator[IdentityStandIns]:
    workdir = tmp_path_factory.mktemp("identity")
    with start_identity(workdir, signer=signer, tenant_id=TENANT) as running:
        yield running


@pytest.fixture(autouse=True)
def environment(
    monkeypatch: pytest.MonkeyPatch, stand_ins: IdentityStandIns
) -> Iterator[None]:
    for name in list(os.environ):
        lowered = name.lower()
        if name.startswith(_STEERING_PREFIXES) or lowered in _PROXY_VARIABLES:
            monkeypatch.delenv(name)
    for name, value in stand_ins.environment().items():
        monkeypatch.setenv(name, value)
    yield
    stand_ins.set_vault_available(True)
    stand_ins.grant_vault_access()


@pytest.fixture
def client_id(stand_ins: IdentityStandIns) -> str:
    """A fresh app registration whose one secret is `_secret_of(app)`."""
    app = str(uuid.uuid4())
    stand_ins.register_app(TENANT, app, [_secret_of(app)], ROLES)
    return app


def _secret_of(client_id: str) -> str:
    return f"secret-of-{client_id}"


def _credential(client_id: str, secret: str, **kwargs: Any) -> ClientSecretCredential:
    return ClientSecretCredential(
        TENANT, client_id, secret, disable_instance_discovery=True, **kwargs
    )


def _post_token(
    stand_ins: IdentityStandIns, tenant: str, **form: str
) -> requests.Response:
    return requests.post(
        f"{stand_ins.authority_host}/{tenant}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", **form},
        verify=str(stand_ins.ca_bundle),
        timeout=TIMEOUT_S,
    )


def _secret_client(stand_ins: IdentityStandIns, **kwargs: Any) -> SecretClient:
    return SecretClient(stand_ins.vault_url, DefaultAzureCredential(), **kwargs)


def test_client_secret_credential_gets_token_with_app_roles(
    stand_ins: IdentityStandIns, signer: TokenSigner, client_id: str
) -> None:
    token = _credential(client_id, _secret_of(client_id)).get_token(DEFENDER_SCOPE)

    claims = signer.verify(token.token)
    assert claims.audience == DEFENDER_RESOURCE
    assert claims.tenant_id == TENANT
    assert claims.app_id == client_id
    assert claims.roles == tuple(ROLES)
    assert claims.expires_on == token.expires_on


def test_token_lifetime_follows_the_registration(
    stand_ins: IdentityStandIns, signer: TokenSigner
) -> None:
    app = str(uuid.uuid4())
    stand_ins.register_app(TENANT, app, ["s"], ROLES, token_lifetime_s=120)

    token = _credential(app, "s").get_token(DEFENDER_SCOPE)

    assert 110 <= token.expires_on - time.time() <= 120


def test_wrong_secret_raises_client_authentication_error(client_id: str) -> None:
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        _credential(client_id, "not-the-secret").get_token(DEFENDER_SCOPE)


def test_unknown_tenant_fails_in_sdk_discovery(client_id: str) -> None:
    credential = ClientSecretCredential(
        str(uuid.uuid4()),
        client_id,
        _secret_of(client_id),
        disable_instance_discovery=True,
    )

    with pytest.raises(ClientAuthenticationError):
        credential.get_token(DEFENDER_SCOPE)


def test_rotation_overlap_accepts_both_secrets_until_one_is_removed(
    stand_ins: IdentityStandIns, client_id: str
) -> None:
    old, new = _secret_of(client_id), "rotated-secret"
    stand_ins.set_app_secrets(client_id, [old, new])
    for secret in (old, new):
        assert _credential(client_id, secret).get_token(DEFENDER_SCOPE).token

    stand_ins.set_app_secrets(client_id, [new])

    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        _credential(client_id, old).get_token(DEFENDER_SCOPE)
    assert _credential(client_id, new).get_token(DEFENDER_SCOPE).token


@pytest.mark.parametrize(
    ("case", "status", "error", "code"),
    [
        ("wrong_secret", 401, "invalid_client", 7000215),
        ("unknown_client", 400, "unauthorized_client", 700016),
        ("unknown_tenant", 400, "invalid_request", 90002),
        ("bad_scope", 400, "invalid_scope", 1002012),
    ],
)
def test_token_errors_are_shaped_like_entra(
    stand_ins: IdentityStandIns,
    client_id: str,
    case: str,
    status: int,
    error: str,
    code: int,
) -> None:
    form = {
        "client_id": client_id,
        "client_secret": _secret_of(client_id),
        "scope": DEFENDER_SCOPE,
    }
    tenant = TENANT
    if case == "wrong_secret":
        form["client_secret"] = "nope"
    elif case == "unknown_client":
        form["client_id"] = str(uuid.uuid4())
    elif case == "unknown_tenant":
        tenant = str(uuid.uuid4())
    else:
        form["scope"] = DEFENDER_RESOURCE

    response = _post_token(stand_ins, tenant, **form)

    body = response.json()
    assert response.status_code == status
    assert body["error"] == error
    assert body["error_description"].startswith(f"AADSTS{code}:")
    assert body["error_codes"] == [code]
    assert {"timestamp", "trace_id", "correlation_id"} <= body.keys()


def test_default_credential_uses_app_service_managed_identity(
    stand_ins: IdentityStandIns, signer: TokenSigner
) -> None:
    token = DefaultAzureCredential().get_token(DEFENDER_SCOPE)

    claims = signer.verify(token.token)
    assert claims.audience == DEFENDER_RESOURCE
    assert claims.app_id == stand_ins.managed_identity_principal_id
    assert claims.tenant_id == TENANT


@pytest.mark.parametrize(
    ("header", "status"), [(None, 400), ("wrong-header", 401)], ids=["missing", "wrong"]
)
def test_identity_endpoint_checks_the_identity_header(
    stand_ins: IdentityStandIns, header: str | None, status: int
) -> None:
    headers = {} if header is None else {"X-IDENTITY-HEADER": header}

    response = requests.get(
        stand_ins.identity_endpoint,
        params={"api-version": "2019-08-01", "resource": DEFENDER_RESOURCE},
        headers=headers,
        verify=str(stand_ins.ca_bundle),
        timeout=TIMEOUT_S,
    )

    assert response.status_code == status
    assert response.json()["statusCode"] == status


def test_identity_endpoint_answers_app_service_shape(
    stand_ins: IdentityStandIns,
) -> None:
    response = requests.get(
        stand_ins.identity_endpoint,
        params={"api-version": "2019-08-01", "resource": DEFENDER_RESOURCE},
        headers={"X-IDENTITY-HEADER": stand_ins.identity_header},
        verify=str(stand_ins.ca_bundle),
        timeout=TIMEOUT_S,
    )

    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["resource"] == DEFENDER_RESOURCE
    assert body["client_id"] == stand_ins.managed_identity_client_id
    assert int(body["expires_on"]) > time.time()


def test_secret_client_reads_secret_after_challenge(
    stand_ins: IdentityStandIns,
) -> None:
    version = stand_ins.set_secret(SECRET_NAME, "s3cr3t-value")

    secret = _secret_client(stand_ins).get_secret(SECRET_NAME)

    assert secret.value == "s3cr3t-value"
    assert secret.properties.version == version
    assert secret.properties.enabled is True


def test_secret_client_reads_latest_or_named_version(
    stand_ins: IdentityStandIns,
) -> None:
    first = stand_ins.set_secret("rotating", "one")
    stand_ins.set_secret("rotating", "two")
    client = _secret_client(stand_ins)

    assert client.get_secret("rotating").value == "two"
    assert client.get_secret("rotating", first).value == "one"


def test_unknown_secret_raises_not_found(stand_ins: IdentityStandIns) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        _secret_client(stand_ins).get_secret("no-such-secret")

    assert caught.value.error is not None
    assert caught.value.error.code == "SecretNotFound"


def test_revoked_access_raises_forbidden_until_granted(
    stand_ins: IdentityStandIns,
) -> None:
    stand_ins.set_secret(SECRET_NAME, "value")
    stand_ins.revoke_vault_access()

    with pytest.raises(HttpResponseError) as caught:
        _secret_client(stand_ins).get_secret(SECRET_NAME)
    assert caught.value.status_code == 403
    assert caught.value.error is not None
    assert caught.value.error.code == "Forbidden"

    stand_ins.grant_vault_access()
    assert _secret_client(stand_ins).get_secret(SECRET_NAME).value == "value"


def test_unavailable_vault_raises_service_unavailable(
    stand_ins: IdentityStandIns,
) -> None:
    stand_ins.set_secret(SECRET_NAME, "value")
    stand_ins.set_vault_available(False)

    with pytest.raises(HttpResponseError) as caught:
        _secret_client(stand_ins, retry_total=0).get_secret(SECRET_NAME)
    assert caught.value.status_code == 503

    stand_ins.set_vault_available(True)
    assert _secret_client(stand_ins).get_secret(SECRET_NAME).value == "value"


def test_vault_challenge_names_authority_and_resource(
    stand_ins: IdentityStandIns,
) -> None:
    response = requests.get(
        f"{stand_ins.vault_url}/secrets/{SECRET_NAME}",
        params={"api-version": "7.6"},
        verify=str(stand_ins.ca_bundle),
        timeout=TIMEOUT_S,
    )

    port = int(stand_ins.vault_url.rsplit(":", 1)[1])
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer authorization="{stand_ins.authority_host}/{TENANT}", '
        f'resource="{challenge_resource(port)}"'
    )


@pytest.mark.parametrize("problem", ["other_audience", "other_key", "expired"])
def test_vault_rejects_tokens_it_cannot_trust(
    stand_ins: IdentityStandIns, signer: TokenSigner, problem: str
) -> None:
    port = int(stand_ins.vault_url.rsplit(":", 1)[1])
    issuer = TokenSigner() if problem == "other_key" else signer
    audience = DEFENDER_RESOURCE if problem == "other_audience" else None
    token, _ = issuer.issue(
        audience=audience or challenge_resource(port),
        tenant_id=TENANT,
        app_id=stand_ins.managed_identity_principal_id,
        lifetime_s=-60 if problem == "expired" else 300,
    )

    response = requests.get(
        f"{stand_ins.vault_url}/secrets/{SECRET_NAME}",
        params={"api-version": "7.6"},
        headers={"Authorization": f"Bearer {token}"},
        verify=str(stand_ins.ca_bundle),
        timeout=TIMEOUT_S,
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "Unauthorized"
    assert "WWW-Authenticate" in response.headers


def test_control_endpoints_rotate_app_secret_and_switch_vault(
    stand_ins: IdentityStandIns, client_id: str
) -> None:
    verify = str(stand_ins.ca_bundle)
    requests.put(
        f"{stand_ins.authority_host}/_standin/apps/{client_id}/secrets",
        json={"secrets": ["from-control"]},
        verify=verify,
        timeout=TIMEOUT_S,
    ).raise_for_status()
    requests.put(
        f"{stand_ins.vault_url}/_standin/availability",
        json={"available": False},
        verify=verify,
        timeout=TIMEOUT_S,
    ).raise_for_status()

    assert _credential(client_id, "from-control").get_token(DEFENDER_SCOPE).token
    with pytest.raises(ClientAuthenticationError):
        _credential(client_id, _secret_of(client_id)).get_token(DEFENDER_SCOPE)
    with pytest.raises(HttpResponseError) as caught:
        _secret_client(stand_ins, retry_total=0).get_secret(SECRET_NAME)
    assert caught.value.status_code == 503


def test_control_endpoints_set_secret_and_revoke_access(
    stand_ins: IdentityStandIns,
) -> None:
    verify = str(stand_ins.ca_bundle)
    requests.put(
        f"{stand_ins.vault_url}/_standin/secrets/controlled",
        json={"value": "via-control"},
        verify=verify,
        timeout=TIMEOUT_S,
    ).raise_for_status()
    assert _secret_client(stand_ins).get_secret("controlled").value == "via-control"

    requests.put(
        f"{stand_ins.vault_url}/_standin/access",
        json={"granted": False},
        verify=verify,
        timeout=TIMEOUT_S,
    ).raise_for_status()

    with pytest.raises(HttpResponseError) as caught:
        _secret_client(stand_ins).get_secret("controlled")
    assert caught.value.status_code == 403


@pytest.mark.parametrize("service", ["entra", "managed_identity", "key_vault"])
def test_sdk_trusts_stand_ins_only_through_requests_ca_bundle(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    stand_ins: IdentityStandIns,
    client_id: str,
    service: str,
) -> None:
    unrelated_ca = tmp_path / "unrelated.pem"
    unrelated_ca.write_bytes(_unrelated_ca_pem())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(unrelated_ca))
    no_retry: dict[str, Any] = {"retry_total": 0}

    with pytest.raises((ServiceRequestError, ClientAuthenticationError)) as caught:
        if service == "entra":
            _credential(client_id, _secret_of(client_id), **no_retry).get_token(
                DEFENDER_SCOPE
            )
        elif service == "managed_identity":
            ManagedIdentityCredential(**no_retry).get_token(DEFENDER_SCOPE)
        else:
            # Once a challenge is cached the client asks for a token first, so
            # its credential must not retry either.
            credential = ManagedIdentityCredential(**no_retry)
            SecretClient(stand_ins.vault_url, credential, **no_retry).get_secret(
                SECRET_NAME
            )

    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)


def _unrelated_ca_pem() -> bytes:
    import trustme

    pem: bytes = trustme.CA().cert_pem.bytes()
    return pem


def test_environment_names_every_setting(stand_ins: IdentityStandIns) -> None:
    env = stand_ins.environment()

    assert env == {
        "AZURE_AUTHORITY_HOST": stand_ins.authority_host,
        "IDENTITY_ENDPOINT": stand_ins.identity_endpoint,
        "IDENTITY_HEADER": stand_ins.identity_header,
        "REQUESTS_CA_BUNDLE": str(stand_ins.ca_bundle),
        "KEY_VAULT_URL": stand_ins.vault_url,
    }
    assert stand_ins.ca_bundle.read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_logs_one_line_per_request_without_secrets_or_tokens(
    stand_ins: IdentityStandIns, client_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="localdev")
    stand_ins.set_secret(SECRET_NAME, "vault-held-value")

    token = _credential(client_id, _secret_of(client_id)).get_token(DEFENDER_SCOPE)
    _secret_client(stand_ins).get_secret(SECRET_NAME)

    ours = [r for r in caplog.records if r.name.startswith("localdev")]
    text = "\n".join(r.getMessage() for r in ours)
    for hidden in (
        _secret_of(client_id),
        "vault-held-value",
        token.token,
        stand_ins.identity_header,
    ):
        assert hidden not in text
    assert f"keyvault GET /secrets/{SECRET_NAME}/ -> 200" in text
    assert "managed-identity GET /msi/token -> 200" in text
    assert "?" not in text


def test_control_endpoint_registers_app(
    stand_ins: IdentityStandIns, signer: TokenSigner
) -> None:
    app = str(uuid.uuid4())
    registration = {
        "tenant_id": TENANT,
        "client_id": app,
        "secrets": ["registered-remotely"],
        "roles": ROLES,
        "token_lifetime_s": 600,
    }

    response = requests.post(
        f"{stand_ins.authority_host}/_standin/apps",
        json=registration,
        verify=str(stand_ins.ca_bundle),
        timeout=TIMEOUT_S,
    )

    assert response.status_code == 201
    token = _credential(app, "registered-remotely").get_token(DEFENDER_SCOPE)
    assert signer.verify(token.token).roles == tuple(ROLES)


def test_control_endpoint_rejects_malformed_body(
    stand_ins: IdentityStandIns,
) -> None:
    response = requests.put(
        f"{stand_ins.vault_url}/_standin/availability",
        json={"available": "sometimes"},
        verify=str(stand_ins.ca_bundle),
        timeout=TIMEOUT_S,
    )

    assert response.status_code == 400
    assert stand_ins.vault.available
