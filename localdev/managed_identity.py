"""A local stand-in for App Service's managed-identity endpoint.

On App Service (and so on Azure Functions) the platform sets
``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER``; azure-identity (through MSAL)
then sends ``GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=...``
with the header value in ``X-IDENTITY-HEADER``. A user-assigned identity is
chosen with ``client_id``, ``object_id`` or ``mi_res_id``. Tokens come back as
``{access_token, expires_on, resource, token_type, client_id}`` with
``expires_on`` in epoch seconds as a string; errors as ``{statusCode,
message, correlationId}``, which MSAL copies into its error description.

Control endpoints: ``PUT /_standin/availability`` with ``{"available": bool}``.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from localdev._standin import StandInApp, json_response
from localdev.tokens import DEFAULT_LIFETIME_S, TokenSigner

__all__ = ["API_VERSION", "ENDPOINT_PATH", "IdentityConfig", "ManagedIdentityStandIn"]

logger = logging.getLogger(__name__)

API_VERSION = "2019-08-01"
ENDPOINT_PATH = "/msi/token"
HEADER_NAME = "X-IDENTITY-HEADER"
_SELECTORS = ("client_id", "object_id", "mi_res_id")


@dataclass(frozen=True)
class IdentityConfig:
    """The app's system-assigned identity as the platform knows it."""

    tenant_id: str
    principal_id: str
    client_id: str
    resource_id: str
    token_lifetime_s: int = DEFAULT_LIFETIME_S
    header: str = field(default="", repr=False)


class ManagedIdentityStandIn(StandInApp):
    """Issues tokens for one identity to callers that know the header."""

    def __init__(self, signer: TokenSigner, identity: IdentityConfig) -> None:
        self._signer = signer
        self.identity = identity
        super().__init__("managed-identity", logger)

    def _service_rules(self) -> list[Rule]:
        return [Rule(ENDPOINT_PATH, endpoint=self._on_token, methods=["GET"])]

    def _unavailable(self, request: Request) -> Response:
        return _error(HTTPStatus.SERVICE_UNAVAILABLE, "The identity endpoint is off.")

    def _on_token(self, request: Request) -> Response:
        problem = self._check_request(request)
        if problem is not None:
            return problem

        resource = request.args["resource"]
        token, expires_on = self._signer.issue(
            audience=resource,
            tenant_id=self.identity.tenant_id,
            app_id=self.identity.principal_id,
            lifetime_s=self.identity.token_lifetime_s,
        )
        return json_response(
            {
                "access_token": token,
                "expires_on": str(expires_on),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": self.identity.client_id,
            }
        )

    def _check_request(self, request: Request) -> Response | None:
        sent = request.headers.get(HEADER_NAME)
        if not sent:
            return _error(HTTPStatus.BAD_REQUEST, f"The {HEADER_NAME} is missing.")
        if not hmac.compare_digest(sent, self.identity.header):
            return _error(HTTPStatus.UNAUTHORIZED, f"The {HEADER_NAME} is wrong.")

        if request.args.get("api-version") != API_VERSION:
            return _error(
                HTTPStatus.BAD_REQUEST, f"Only api-version {API_VERSION} is served."
            )
        if not request.args.get("resource"):
            return _error(HTTPStatus.BAD_REQUEST, "The resource is missing.")
        if not self._is_own_identity(request):
            return _error(
                HTTPStatus.BAD_REQUEST, "No such user-assigned identity on this app."
            )
        return None

    def _is_own_identity(self, request: Request) -> bool:
        own = {
            "client_id": self.identity.client_id,
            "object_id": self.identity.principal_id,
            "mi_res_id": self.identity.resource_id,
        }
        asked = {key: request.args[key] for key in _SELECTORS if key in request.args}
        return all(own[key].lower() == value.lower() for key, value in asked.items())


def _error(status: int, message: str) -> Response:
    body = {
        "statusCode": status,
        "message": message,
        "correlationId": str(uuid.uuid4()),
    }
    return json_response(body, status)
