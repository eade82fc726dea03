"""Who is calling, and which indicators they may see and change.

Tokens come from the local identity stand-ins and are checked with the shared
`TokenSigner`. An app holding only ``Ti.ReadWrite`` sees (and so can delete)
only indicators it created; ``Ti.ReadWrite.All`` sees them all. Exposure to
device groups is checked separately, only when changing an indicator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emulator.responses import ApiError
from localdev.tokens import TokenError, TokenSigner

__all__ = ["ROLE_ALL", "ROLE_OWN", "Caller", "authenticate", "can_change", "can_see"]

ROLE_ALL = "Ti.ReadWrite.All"
ROLE_OWN = "Ti.ReadWrite"
_BEARER = "bearer"
_UNAUTHORIZED = 401
_FORBIDDEN = 403
_MISSING_ROLES = (
    f"Missing application roles. API required roles: {ROLE_ALL}, {ROLE_OWN}"
)


@dataclass(frozen=True)
class Caller:
    """The authenticated app and tenant behind a call."""

    tenant_id: str
    app_id: str
    sees_all: bool


def authenticate(
    authorization: str | None,
    signer: TokenSigner,
    audiences: tuple[str, ...],
) -> Caller:
    """Check the ``Authorization`` header; raises ApiError 401 or 403."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != _BEARER or not token.strip():
        raise ApiError(_UNAUTHORIZED, "Unauthorized", "a bearer token is required")
    try:
        claims = signer.verify(token.strip())
    except TokenError as exc:
        # The reason comes from the JWT library and never quotes the token.
        raise ApiError(
            _UNAUTHORIZED, "Unauthorized", f"the bearer token is not valid: {exc}"
        ) from exc

    if claims.audience not in audiences:
        raise ApiError(
            _FORBIDDEN, "Forbidden", f"tokens for {claims.audience} are not accepted"
        )
    if ROLE_ALL not in claims.roles and ROLE_OWN not in claims.roles:
        raise ApiError(_FORBIDDEN, "Forbidden", _MISSING_ROLES)
    return Caller(claims.tenant_id, claims.app_id, ROLE_ALL in claims.roles)


def can_see(caller: Caller, indicator: Mapping[str, Any]) -> bool:
    """Whether the caller's role lets it see `indicator` at all."""
    return caller.sees_all or indicator.get("createdBy") == caller.app_id


def can_change(exposure: frozenset[str] | None, indicator: Mapping[str, Any]) -> bool:
    """Whether an app exposed to `exposure` groups (None: all) may change it.

    An indicator for all devices (no groups) is open to every app.
    """
    if exposure is None:
        return True
    return all(group in exposure for group in indicator.get("rbacGroupIds") or ())
