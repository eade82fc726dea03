"""Start the local Entra ID, managed-identity and Key Vault stand-ins together.

Each runs on its own loopback HTTPS port with a certificate from one local CA,
so the unmodified azure-identity and azure-keyvault-secrets code can talk to
them once the function app's environment holds the values of
:meth:`IdentityStandIns.environment`::

    stand_ins = start_identity(workdir, signer=signer, tenant_id=tenant)
    stand_ins.register_app(tenant, client_id, [secret], ["Ti.ReadWrite.All"])
    stand_ins.set_secret("defender-client-secret", secret)
    os.environ.update(stand_ins.environment())

Every server also takes the control calls described in its module
(:mod:`localdev.entra`, :mod:`localdev.managed_identity`,
:mod:`localdev.keyvault`), so another process can rotate a secret or take the
vault down.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from localdev._standin import StandInApp
from localdev.certs import LocalCA
from localdev.entra import EntraStandIn
from localdev.keyvault import KeyVaultStandIn
from localdev.managed_identity import (
    ENDPOINT_PATH,
    IdentityConfig,
    ManagedIdentityStandIn,
)
from localdev.servers import RunningServer, serve
from localdev.tokens import DEFAULT_LIFETIME_S, TokenSigner

__all__ = ["IdentityStandIns", "start_identity"]

logger = logging.getLogger(__name__)

_IDENTITY_RESOURCE_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/localdev"
    "/providers/Microsoft.Web/sites/ioc-batch-delete"
)
_IDENTITY_HEADER_BYTES = 24


@dataclass
class IdentityStandIns:
    """The three running stand-ins and the settings that point at them."""

    ca: LocalCA
    entra: EntraStandIn
    managed_identity: ManagedIdentityStandIn
    vault: KeyVaultStandIn
    authority_host: str
    identity_endpoint: str
    vault_url: str
    servers: list[RunningServer] = field(repr=False)

    @property
    def ca_bundle(self) -> Path:
        return self.ca.ca_bundle

    @property
    def identity_header(self) -> str:
        return self.managed_identity.identity.header

    @property
    def managed_identity_principal_id(self) -> str:
        return self.managed_identity.identity.principal_id

    @property
    def managed_identity_client_id(self) -> str:
        return self.managed_identity.identity.client_id

    @property
    def tenant_id(self) -> str:
        return self.managed_identity.identity.tenant_id

    def register_app(
        self,
        tenant_id: str,
        client_id: str,
        secrets: list[str],
        roles: list[str],
        token_lifetime_s: int = DEFAULT_LIFETIME_S,
    ) -> None:
        """Register an app registration that can sign in with any of `secrets`."""
        self.entra.register_app(tenant_id, client_id, secrets, roles, token_lifetime_s)

    def set_app_secrets(self, client_id: str, secrets: list[str]) -> None:
        """Replace the app's valid secrets; raises KeyError for unknown apps."""
        self.entra.set_app_secrets(client_id, secrets)

    def set_secret(self, name: str, value: str) -> str:
        """Add a version of a Key Vault secret; returns the version id."""
        return self.vault.set_secret(name, value)

    def set_vault_available(self, available: bool) -> None:
        """Switch Key Vault between serving and answering 503."""
        self.vault.set_available(available)

    def revoke_vault_access(self, principal_id: str | None = None) -> None:
        """Stop a principal (default: the managed identity) reading secrets."""
        self.vault.set_access(False, principal_id)

    def grant_vault_access(self, principal_id: str | None = None) -> None:
        """Let a principal (default: the managed identity) read secrets."""
        self.vault.set_access(True, principal_id)

    def environment(self) -> dict[str, str]:
        """The environment variables that send the function app here."""
        return {
            "AZURE_AUTHORITY_HOST": self.authority_host,
            "IDENTITY_ENDPOINT": self.identity_endpoint,
            "IDENTITY_HEADER": self.identity_header,
            "REQUESTS_CA_BUNDLE": str(self.ca_bundle),
            "KEY_VAULT_URL": self.vault_url,
        }

    def stop(self) -> None:
        """Stop all three servers."""
        for server in self.servers:
            server.stop()
        logger.info("Identity stand-ins stopped")

    def __enter__(self) -> IdentityStandIns:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_identity(
    workdir: Path,
    *,
    signer: TokenSigner,
    tenant_id: str,
    managed_identity_principal_id: str | None = None,
    managed_identity_token_lifetime_s: int = DEFAULT_LIFETIME_S,
    ca: LocalCA | None = None,
) -> IdentityStandIns:
    """Start Entra ID, managed identity and Key Vault on free loopback ports.

    The CA certificate is written into `workdir` unless `ca` is given (to
    share one CA with other local HTTPS servers). Raises OSError when a
    server cannot start; the ones already started are stopped first.
    """
    ca = ca or LocalCA(workdir)
    identity = IdentityConfig(
        tenant_id=tenant_id,
        principal_id=managed_identity_principal_id or str(uuid.uuid4()),
        client_id=str(uuid.uuid4()),
        resource_id=_IDENTITY_RESOURCE_ID,
        token_lifetime_s=managed_identity_token_lifetime_s,
        header=secrets.token_urlsafe(_IDENTITY_HEADER_BYTES),
    )
    entra = EntraStandIn(signer)
    entra.add_tenant(tenant_id)
    managed_identity = ManagedIdentityStandIn(signer, identity)

    with ExitStack() as started:
        entra_server = started.enter_context(_serve_tls(entra, ca))
        identity_server = started.enter_context(_serve_tls(managed_identity, ca))
        vault = KeyVaultStandIn(
            signer,
            authority_host=entra_server.url,
            tenant_id=tenant_id,
            default_principal_id=identity.principal_id,
        )
        vault_server = started.enter_context(_serve_tls(vault, ca))
        started.pop_all()

    logger.info(
        "Identity stand-ins: entra %s, identity %s, vault %s",
        entra_server.url,
        identity_server.url,
        vault_server.url,
    )
    return IdentityStandIns(
        ca=ca,
        entra=entra,
        managed_identity=managed_identity,
        vault=vault,
        authority_host=entra_server.url,
        identity_endpoint=identity_server.url + ENDPOINT_PATH,
        vault_url=vault_server.url,
        servers=[entra_server, identity_server, vault_server],
    )


def _serve_tls(app: StandInApp, ca: LocalCA) -> RunningServer:
    return serve(app, ssl_context=ca.server_context())
