"""A local stand-in for Key Vault's secret reads.

``GET /secrets/{name}[/{version}]?api-version=...`` answers ``{"value", "id",
"attributes"}``. A call without a bearer token gets 401 and the challenge
``WWW-Authenticate: Bearer authorization="{authority}/{tenant}",
resource="{resource}"`` that azure-keyvault's ChallengeAuthPolicy parses; it
then asks its credential for ``{resource}/.default`` and calls again. Tokens
must be signed by the shared TokenSigner, unexpired, for this tenant, with
the challenge resource as audience, and from a principal granted access.

The challenge resource is ``https://0.0.1:{port}``, not the vault's own URL.
The SDK accepts a challenge only when the vault's host ends with "." plus the
resource's host (a real vault ``x.vault.azure.net`` and the resource
``vault.azure.net``). No host name fits under ``127.0.0.1``, but the text
``127.0.0.1:{port}`` does end with ``.0.0.1:{port}``, so this resource passes
the unmodified check without ``verify_challenge_resource=False``.

Control endpoints (JSON bodies, loopback callers only):

- ``PUT /_standin/secrets/{name}``: ``{"value": "..."}`` adds a new version.
- ``PUT /_standin/access``: ``{"granted": bool, "principal_id": "..."}``;
  the principal defaults to the app's managed identity.
- ``PUT /_standin/availability``: ``{"available": false}`` answers 503.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from localdev._standin import (
    CONTROL_PREFIX,
    ControlRequestError,
    StandInApp,
    json_response,
    read_json,
)
from localdev.tokens import TokenError, TokenSigner

__all__ = ["CHALLENGE_RESOURCE_HOST", "KeyVaultStandIn", "challenge_resource"]

logger = logging.getLogger(__name__)

CHALLENGE_RESOURCE_HOST = "0.0.1"
RECOVERY_LEVEL = "Recoverable+Purgeable"
RECOVERABLE_DAYS = 90
_SECRET_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")


def challenge_resource(port: int) -> str:
    """The resource a vault stand-in on `port` names in its challenge."""
    return f"https://{CHALLENGE_RESOURCE_HOST}:{port}"


@dataclass(frozen=True)
class _SecretVersion:
    version: str
    created: int
    value: str = field(repr=False)


class KeyVaultStandIn(StandInApp):
    """Serves secrets to principals holding a token the vault accepts."""

    def __init__(
        self,
        signer: TokenSigner,
        *,
        authority_host: str,
        tenant_id: str,
        default_principal_id: str,
    ) -> None:
        self._signer = signer
        self._authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self._tenant_id = tenant_id
        self._default_principal = default_principal_id
        self._granted = {default_principal_id.lower()}
        self._secrets: dict[str, list[_SecretVersion]] = {}
        super().__init__("keyvault", logger)

    def set_secret(self, name: str, value: str) -> str:
        """Store a new version of secret `name`; returns the version id."""
        if not _SECRET_NAME.match(name):
            raise ValueError(f"invalid Key Vault secret name {name!r}")
        version = _SecretVersion(uuid.uuid4().hex, int(time.time()), value)
        with self._lock:
            self._secrets.setdefault(name.lower(), []).append(version)
        logger.info("Stored secret %s version %s", name, version.version)
        return version.version

    def set_access(self, granted: bool, principal_id: str | None = None) -> None:
        """Grant or revoke secret reads for a principal (default: the identity)."""
        principal = (principal_id or self._default_principal).lower()
        with self._lock:
            if granted:
                self._granted.add(principal)
            else:
                self._granted.discard(principal)
        logger.info("Vault access for %s granted: %s", principal, granted)

    def _service_rules(self) -> list[Rule]:
        return [
            Rule("/secrets/<name>", endpoint=self._on_get_secret, methods=["GET"]),
            Rule("/secrets/<name>/", endpoint=self._on_get_secret, methods=["GET"]),
            Rule(
                "/secrets/<name>/<version>",
                endpoint=self._on_get_secret,
                methods=["GET"],
            ),
        ]

    def _control_rules(self) -> list[Rule]:
        return [
            Rule(
                f"{CONTROL_PREFIX}/secrets/<name>",
                endpoint=self._on_put_secret,
                methods=["PUT", "POST"],
            ),
            Rule(
                f"{CONTROL_PREFIX}/access",
                endpoint=self._on_access,
                methods=["PUT", "POST"],
            ),
        ]

    def _unavailable(self, request: Request) -> Response:
        return _error(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The vault is switched off for a fault test.",
        )

    def _not_found(self, request: Request) -> Response:
        return _error(
            HTTPStatus.NOT_FOUND, "NotFound", f"Nothing is served at {request.path}."
        )

    def _on_get_secret(
        self, request: Request, name: str, version: str | None = None
    ) -> Response:
        if not request.args.get("api-version"):
            return _error(
                HTTPStatus.BAD_REQUEST,
                "BadParameter",
                "The api-version query parameter is required.",
            )
        denied = self._authorize(request)
        if denied is not None:
            return denied

        found = self._find(name, version)
        if found is None:
            return _error(
                HTTPStatus.NOT_FOUND,
                "SecretNotFound",
                f"This vault holds no secret '{name}' (version {version or 'latest'}).",
            )
        return json_response(_secret_body(request.host_url, name, found))

    def _authorize(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return self._challenge(
                request, "AKV10000: the request has no bearer token."
            )
        try:
            claims = self._signer.verify(token.strip())
        except TokenError as exc:
            return self._challenge(request, f"The bearer token is not valid: {exc}.")

        resource = challenge_resource(int(request.environ["SERVER_PORT"]))
        if claims.audience != resource:
            return self._challenge(request, "The token is for another audience.")
        if claims.tenant_id.lower() != self._tenant_id.lower():
            return self._challenge(request, "The token was issued by another tenant.")
        if claims.app_id.lower() not in self._granted:
            return _error(
                HTTPStatus.FORBIDDEN,
                "Forbidden",
                f"Caller '{claims.app_id}' may not get secrets from this vault.",
                inner_code="ForbiddenByRbac",
            )
        return None

    def _challenge(self, request: Request, message: str) -> Response:
        resource = challenge_resource(int(request.environ["SERVER_PORT"]))
        header = f'Bearer authorization="{self._authority}", resource="{resource}"'
        return _error(
            HTTPStatus.UNAUTHORIZED,
            "Unauthorized",
            message,
            headers={"WWW-Authenticate": header},
        )

    def _find(self, name: str, version: str | None) -> _SecretVersion | None:
        with self._lock:
            versions = list(self._secrets.get(name.lower(), []))
        if not version:
            return versions[-1] if versions else None
        return next((v for v in versions if v.version == version.lower()), None)

    def _on_put_secret(self, request: Request, name: str) -> Response:
        value = read_json(request).get("value")
        if not isinstance(value, str):
            raise ControlRequestError('"value" must be a string')
        version = self.set_secret(name, value)
        return json_response({"name": name, "version": version}, HTTPStatus.CREATED)

    def _on_access(self, request: Request) -> Response:
        body = read_json(request)
        granted, principal = body.get("granted"), body.get("principal_id")
        if not isinstance(granted, bool):
            raise ControlRequestError('"granted" must be true or false')
        if principal is not None and not isinstance(principal, str):
            raise ControlRequestError('"principal_id" must be a string')
        self.set_access(granted, principal)
        return json_response({"granted": granted})


def _secret_body(host_url: str, name: str, found: _SecretVersion) -> dict[str, object]:
    return {
        "value": found.value,
        "id": f"{host_url}secrets/{name}/{found.version}",
        "attributes": {
            "enabled": True,
            "created": found.created,
            "updated": found.created,
            "recoveryLevel": RECOVERY_LEVEL,
            "recoverableDays": RECOVERABLE_DAYS,
        },
    }


def _error(
    status: int,
    code: str,
    message: str,
    *,
    inner_code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    error: dict[str, object] = {"code": code, "message": message}
    if inner_code is not None:
        error["innererror"] = {"code": inner_code}
    return json_response({"error": error}, status, headers)
