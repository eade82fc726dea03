"""A throwaway certificate authority for the local HTTPS stand-ins.

The Azure SDKs refuse plain HTTP for credentials and Key Vault, so every
stand-in speaks TLS with one certificate issued by a CA made at start. The CA
certificate is written as PEM; pointing ``REQUESTS_CA_BUNDLE`` at it makes
azure-core's requests transport (and so MSAL, which borrows that transport
through azure-identity) trust the stand-ins and nothing else.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import trustme

__all__ = ["CA_BUNDLE_NAME", "SERVER_NAMES", "LocalCA"]

logger = logging.getLogger(__name__)

CA_BUNDLE_NAME = "localdev-ca.pem"
SERVER_NAMES = ("127.0.0.1", "localhost", "::1")


class LocalCA:
    """A CA and one loopback server certificate, both kept in memory."""

    def __init__(self, workdir: Path) -> None:
        self._ca = trustme.CA()
        self._leaf = self._ca.issue_cert(*SERVER_NAMES)
        workdir.mkdir(parents=True, exist_ok=True)
        self.ca_bundle = workdir / CA_BUNDLE_NAME
        self._ca.cert_pem.write_to_path(str(self.ca_bundle))
        logger.info("Wrote the local CA certificate to %s", self.ca_bundle)

    def server_context(self) -> ssl.SSLContext:
        """Return a TLS server context presenting the loopback certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._leaf.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Return a TLS client context that trusts only this CA."""
        return ssl.create_default_context(cafile=str(self.ca_bundle))
