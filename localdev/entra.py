"""A local stand-in for Entra ID's v2.0 endpoints, enough for client credentials.

MSAL, with instance discovery disabled, makes two calls (both seen by running
azure-identity against this server): ``GET
/{tenant}/v2.0/.well-known/openid-configuration`` once per credential, then
``POST /{tenant}/oauth2/v2.0/token`` with ``grant_type=client_credentials``,
``client_id``, ``client_secret`` and ``scope``. Errors carry the fields Entra
sends (``error``, ``error_description`` opening with the AADSTS code,
``error_codes``, ``timestamp``, ``trace_id``, ``correlation_id``).

Control endpoints (JSON bodies, loopback callers only):

- ``POST /_standin/apps``: ``{"tenant_id", "client_id", "secrets": [...],
  "roles": [...], "token_lifetime_s"}`` registers or replaces an app.
- ``PUT /_standin/apps/{client_id}/secrets``: ``{"secrets": [...]}`` sets the
  secrets that are valid now; several may be valid at once during rotation.
- ``PUT /_standin/availability``: ``{"available": false}`` answers 503.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from localdev._standin import (
    CONTROL_PREFIX,
    ControlRequestError,
    JsonObject,
    StandInApp,
    json_response,
    read_json,
    string_list,
)
from localdev.tokens import DEFAULT_LIFETIME_S, TokenSigner

__all__ = ["DEFAULT_SCOPE_SUFFIX", "EntraStandIn"]

logger = logging.getLogger(__name__)

DEFAULT_SCOPE_SUFFIX = "/.default"
CLIENT_CREDENTIALS = "client_credentials"
_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%SZ"


# AADSTS codes Entra uses for the failures this stand-in reproduces.
UNKNOWN_TENANT = 90002
MISSING_PARAMETER = 900144
UNSUPPORTED_GRANT = 70003
UNKNOWN_CLIENT = 700016
INVALID_SCOPE = 1002012
INVALID_SECRET = 7000215
TEMPORARILY_UNAVAILABLE = 90033


@dataclass(frozen=True)
class _EntraError:
    status: int
    error: str
    code: int
    message: str


class _Rejected(Exception):
    """A token request Entra would refuse; carries the error to send."""

    def __init__(self, error: _EntraError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass
class _App:
    tenant_id: str
    client_id: str
    roles: tuple[str, ...]
    token_lifetime_s: int
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def accepts(self, secret: str) -> bool:
        return any(hmac.compare_digest(secret, s) for s in self.secrets)


def _unknown_tenant(tenant_id: str, error: str = "invalid_request") -> _EntraError:
    # Entra names this "invalid_tenant" on discovery, "invalid_request" on token.
    return _EntraError(
        HTTPStatus.BAD_REQUEST,
        error,
        UNKNOWN_TENANT,
        f"Tenant '{tenant_id}' is not known to this directory.",
    )


def _reject(status: int, error: str, code: int, message: str) -> _Rejected:
    return _Rejected(_EntraError(status, error, code, message))


class EntraStandIn(StandInApp):
    """Issues client-credential tokens for the apps registered with it."""

    def __init__(self, signer: TokenSigner) -> None:
        self._signer = signer
        self._tenants: set[str] = set()
        self._apps: dict[str, _App] = {}
        super().__init__("entra", logger)

    def add_tenant(self, tenant_id: str) -> None:
        """Make `tenant_id` a known directory."""
        with self._lock:
            self._tenants.add(tenant_id.lower())

    def register_app(
        self,
        tenant_id: str,
        client_id: str,
        secrets: list[str],
        roles: list[str],
        token_lifetime_s: int = DEFAULT_LIFETIME_S,
    ) -> None:
        """Register (or replace) an app with its valid secrets and app roles."""
        app = _App(
            tenant_id=tenant_id.lower(),
            client_id=client_id,
            roles=tuple(roles),
            token_lifetime_s=token_lifetime_s,
            secrets=tuple(secrets),
        )
        with self._lock:
            self._tenants.add(app.tenant_id)
            self._apps[client_id.lower()] = app
        logger.info("Registered app %s in tenant %s", client_id, tenant_id)

    def set_app_secrets(self, client_id: str, secrets: list[str]) -> None:
        """Replace the app's valid secrets; raises KeyError for unknown apps."""
        with self._lock:
            self._apps[client_id.lower()].secrets = tuple(secrets)
        logger.info("App %s now has %d valid secret(s)", client_id, len(secrets))

    def _service_rules(self) -> list[Rule]:
        return [
            Rule(
                "/<tenant>/v2.0/.well-known/openid-configuration",
                endpoint=self._on_discovery,
                methods=["GET"],
            ),
            Rule(
                "/<tenant>/oauth2/v2.0/token",
                endpoint=self._on_token,
                methods=["POST"],
            ),
        ]

    def _control_rules(self) -> list[Rule]:
        return [
            Rule(
                f"{CONTROL_PREFIX}/apps",
                endpoint=self._on_register_app,
                methods=["POST"],
            ),
            Rule(
                f"{CONTROL_PREFIX}/apps/<client_id>/secrets",
                endpoint=self._on_set_secrets,
                methods=["PUT", "POST"],
            ),
        ]

    def _unavailable(self, request: Request) -> Response:
        return _error_response(
            request,
            _EntraError(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                TEMPORARILY_UNAVAILABLE,
                "The directory is switched off for a fault test.",
            ),
        )

    def _on_discovery(self, request: Request, tenant: str) -> Response:
        if tenant.lower() not in self._tenants:
            return _error_response(request, _unknown_tenant(tenant, "invalid_tenant"))
        return json_response(_openid_configuration(request.host_url, tenant))

    def _on_token(self, request: Request, tenant: str) -> Response:
        form = request.form.to_dict()
        try:
            self._check_form(tenant, form)
            app = self._find_app(tenant, form["client_id"])
            audience = _audience_of(form["scope"])
            if not app.accepts(form.get("client_secret", "")):
                raise _reject(
                    HTTPStatus.UNAUTHORIZED,
                    "invalid_client",
                    INVALID_SECRET,
                    f"The client secret sent for app '{app.client_id}' is wrong.",
                )
        except _Rejected as rejected:
            return _error_response(request, rejected.error)

        token, _ = self._signer.issue(
            audience=audience,
            tenant_id=app.tenant_id,
            app_id=app.client_id,
            roles=app.roles,
            lifetime_s=app.token_lifetime_s,
        )
        return json_response(
            {
                "token_type": "Bearer",
                "expires_in": app.token_lifetime_s,
                "ext_expires_in": app.token_lifetime_s,
                "access_token": token,
            }
        )

    def _check_form(self, tenant: str, form: dict[str, str]) -> None:
        if tenant.lower() not in self._tenants:
            raise _Rejected(_unknown_tenant(tenant))
        for parameter in ("grant_type", "client_id", "scope"):
            if not form.get(parameter):
                raise _reject(
                    HTTPStatus.BAD_REQUEST,
                    "invalid_request",
                    MISSING_PARAMETER,
                    f"The request body has no '{parameter}' parameter.",
                )
        if form["grant_type"] != CLIENT_CREDENTIALS:
            raise _reject(
                HTTPStatus.BAD_REQUEST,
                "unsupported_grant_type",
                UNSUPPORTED_GRANT,
                f"This stand-in supports only the '{CLIENT_CREDENTIALS}' grant.",
            )

    def _find_app(self, tenant: str, client_id: str) -> _App:
        app = self._apps.get(client_id.lower())
        if app is None or app.tenant_id != tenant.lower():
            raise _reject(
                HTTPStatus.BAD_REQUEST,
                "unauthorized_client",
                UNKNOWN_CLIENT,
                f"No application '{client_id}' in directory '{tenant}'.",
            )
        return app

    def _on_register_app(self, request: Request) -> Response:
        body = read_json(request)
        lifetime = body.get("token_lifetime_s", DEFAULT_LIFETIME_S)
        if not isinstance(lifetime, int):
            raise ControlRequestError('"token_lifetime_s" must be an integer')
        self.register_app(
            str(body["tenant_id"]),
            str(body["client_id"]),
            string_list(body, "secrets"),
            string_list(body, "roles"),
            lifetime,
        )
        return json_response({"client_id": body["client_id"]}, HTTPStatus.CREATED)

    def _on_set_secrets(self, request: Request, client_id: str) -> Response:
        secrets = string_list(read_json(request), "secrets")
        if client_id.lower() not in self._apps:
            return json_response(
                {"error": f"unknown app {client_id}"}, HTTPStatus.NOT_FOUND
            )
        self.set_app_secrets(client_id, secrets)
        return json_response({"client_id": client_id, "secrets": len(secrets)})


def _audience_of(scope: str) -> str:
    """The resource a client-credentials scope names; raises _Rejected."""
    scopes = scope.split()
    resource = scopes[0].removesuffix(DEFAULT_SCOPE_SUFFIX) if scopes else ""
    if len(scopes) != 1 or not resource or resource == scopes[0]:
        raise _reject(
            HTTPStatus.BAD_REQUEST,
            "invalid_scope",
            INVALID_SCOPE,
            f"Scope '{scope}' does not suit client credentials: name one "
            f"resource followed by '{DEFAULT_SCOPE_SUFFIX}'.",
        )
    return resource


def _openid_configuration(host_url: str, tenant: str) -> JsonObject:
    base = f"{host_url.rstrip('/')}/{tenant}"
    return {
        "issuer": f"{base}/v2.0",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "response_types_supported": ["code", "id_token", "token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "tenant_region_scope": "local",
    }


def _error_response(request: Request, error: _EntraError) -> Response:
    now = datetime.now(UTC).strftime(_TIMESTAMP_FORMAT)
    trace_id = str(uuid.uuid4())
    correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
    description = (
        f"AADSTS{error.code}: {error.message} Trace ID: {trace_id} "
        f"Correlation ID: {correlation_id} Timestamp: {now}"
    )
    body = {
        "error": error.error,
        "error_description": description,
        "error_codes": [error.code],
        "timestamp": now,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"{request.host_url}error?code={error.code}",
    }
    return json_response(body, error.status)
