"""The client secret and the Defender access token.

In Azure the secret lives in Key Vault and is read with the app's managed
identity (`DefaultAzureCredential`). It is cached briefly and read again as
soon as the token endpoint rejects it, so a rotated secret is picked up
without a restart (Key Vault references in app settings can lag by a day).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.identity import ClientSecretCredential, DefaultAzureCredential
from azure.keyvault.secrets import SecretClient

from .errors import CredentialError
from .settings import Settings

__all__ = [
    "SECRET_CACHE_S",
    "DefenderTokenProvider",
    "SecretSource",
    "TokenProvider",
    "client_secret_credential",
]

logger = logging.getLogger(__name__)

SECRET_CACHE_S = 300.0
# azure-core retries ten times by default; a vault that is down should
# surface within seconds so the job can be retried later instead.
_VAULT_RETRIES = 3
# Entra ID's codes for a client secret that is wrong or expired: the only
# failures that a re-read of the secret can cure.
_REJECTED_SECRET_CODES = ("AADSTS7000215", "AADSTS7000222", "invalid_client")


class TokenProvider(Protocol):
    """Supplies bearer tokens for the Defender API."""

    def token(self, *, fresh: bool = False) -> str:
        """A valid access token; `fresh` skips any cached one."""
        ...


class SecretSource:
    """Reads the client secret from Key Vault, or from a local setting."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_factory: Callable[[], SecretClient] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._client_factory = client_factory or self._default_client
        self._client: SecretClient | None = None
        self._clock = clock
        self._lock = threading.Lock()
        self._value: str | None = None
        self._read_at = 0.0

    def __repr__(self) -> str:
        return f"SecretSource(vault={self._settings.key_vault_url!r}, value=[secure])"

    def get(self, *, refresh: bool = False) -> str:
        """The secret; read again when stale or when `refresh` is set."""
        if self._settings.key_vault_url is None:
            assert self._settings.client_secret is not None
            return self._settings.client_secret
        with self._lock:
            stale = self._clock() - self._read_at > SECRET_CACHE_S
            if self._value is None or stale or refresh:
                self._value = self._read()
                self._read_at = self._clock()
            return self._value

    def _read(self) -> str:
        name = self._settings.secret_name
        try:
            if self._client is None:
                self._client = self._client_factory()
            value: str | None = self._client.get_secret(name).value
        except AzureError as exc:
            status = getattr(exc, "status_code", None)
            why = f"status {status}" if status else type(exc).__name__
            raise CredentialError(
                f"could not read secret {name!r} from Key Vault "
                f"{self._settings.key_vault_url}: {why}"
            ) from exc
        if not value:
            raise CredentialError(f"secret {name!r} in Key Vault is empty")
        logger.info("read client secret %r from Key Vault", name)
        return value

    def _default_client(self) -> SecretClient:
        assert self._settings.key_vault_url is not None
        return SecretClient(
            self._settings.key_vault_url,
            DefaultAzureCredential(),
            retry_total=_VAULT_RETRIES,
        )


CredentialFactory = Callable[[Settings, str], TokenCredential]


def client_secret_credential(settings: Settings, secret: str) -> TokenCredential:
    """A client-credentials credential for the Defender app registration."""
    options: dict[str, object] = {}
    if settings.authority_host:
        options["authority"] = settings.authority_host
    return ClientSecretCredential(
        settings.tenant_id,
        settings.client_id,
        secret,
        disable_instance_discovery=settings.disable_instance_discovery,
        **options,
    )


class DefenderTokenProvider:
    """Client-credentials tokens for Defender, re-reading a rejected secret."""

    def __init__(
        self,
        settings: Settings,
        secrets: SecretSource,
        *,
        credential_factory: CredentialFactory = client_secret_credential,
    ) -> None:
        self._settings = settings
        self._secrets = secrets
        self._factory = credential_factory
        self._lock = threading.Lock()
        self._credential: TokenCredential | None = None
        self._secret_used: str | None = None

    def __repr__(self) -> str:
        return f"DefenderTokenProvider(client_id={self._settings.client_id!r})"

    def token(self, *, fresh: bool = False) -> str:
        with self._lock:
            if fresh:
                self._credential = None
            try:
                return self._get_token(refresh_secret=False)
            except ClientAuthenticationError as exc:
                if not _secret_rejected(exc):
                    raise _credential_error(exc) from exc
                logger.warning("token endpoint rejected the client secret; re-reading")
            try:
                return self._get_token(refresh_secret=True)
            except AzureError as exc:
                raise _credential_error(exc) from exc

    def _get_token(self, *, refresh_secret: bool) -> str:
        secret = self._secrets.get(refresh=refresh_secret)
        if self._credential is None or secret != self._secret_used:
            self._credential = self._factory(self._settings, secret)
            self._secret_used = secret
        try:
            return self._credential.get_token(self._settings.token_scope).token
        except ClientAuthenticationError:
            raise
        except AzureError as exc:
            raise _credential_error(exc) from exc


def _secret_rejected(exc: ClientAuthenticationError) -> bool:
    text = str(exc)
    return any(code in text for code in _REJECTED_SECRET_CODES)


def _credential_error(exc: AzureError) -> CredentialError:
    # The SDK's message can quote the response; keep only the first line and
    # never the secret, which the SDK does not echo.
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return CredentialError(f"could not get a Defender token: {first_line}")
