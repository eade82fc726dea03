"""Access tokens shared by the local identity stand-ins and the emulators.

The Entra ID and managed-identity stand-ins issue JWTs signed with HS256 and a
key made at start; the Defender emulator and the Key Vault stand-in verify
them with the same key. Claims follow Entra ID's v1 access tokens: ``aud``,
``iss``, ``tid``, ``appid``, ``roles``, ``iat``, ``nbf``, ``exp``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt

__all__ = ["TokenClaims", "TokenError", "TokenSigner"]

_ALGORITHM = "HS256"
DEFAULT_LIFETIME_S = 3600


class TokenError(Exception):
    """A bearer token is missing, malformed, badly signed or expired."""


@dataclass(frozen=True)
class TokenClaims:
    audience: str
    tenant_id: str
    app_id: str
    roles: tuple[str, ...] = ()
    expires_on: int = 0


@dataclass
class TokenSigner:
    """Issues and verifies the local stand-ins' tokens."""

    key: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def issue(
        self,
        *,
        audience: str,
        tenant_id: str,
        app_id: str,
        roles: tuple[str, ...] | list[str] = (),
        lifetime_s: int = DEFAULT_LIFETIME_S,
    ) -> tuple[str, int]:
        """Return a signed token and its expiry in epoch seconds."""
        now = int(time.time())
        expires_on = now + lifetime_s
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{tenant_id}/",
            "tid": tenant_id,
            "appid": app_id,
            "roles": list(roles),
            "iat": now,
            "nbf": now,
            "exp": expires_on,
        }
        return jwt.encode(claims, self.key, algorithm=_ALGORITHM), expires_on

    def verify(self, token: str) -> TokenClaims:
        """Decode a token; raises TokenError when it cannot be trusted."""
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[_ALGORITHM],
                options={"verify_aud": False, "require": ["exp", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from exc
        return TokenClaims(
            audience=str(claims["aud"]),
            tenant_id=str(claims.get("tid", "")),
            app_id=str(claims.get("appid", "")),
            roles=tuple(str(r) for r in claims.get("roles", [])),
            expires_on=int(claims["exp"]),
        )
