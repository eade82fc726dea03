"""App settings: read once, validated together, documented in the README.

`Settings.from_environ()` checks every setting before any work starts and
raises one `SettingsError` naming each bad setting, so a misconfiguration is
never discovered halfway through a job.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .cleanup import CleanupPolicy, PolicyError
from .errors import SettingsError
from .jobs import MAX_IDS_PER_JOB

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_BATCH_DELETE_LIMITS",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_LINGER_S",
    "DEFAULT_LIST_LIMITS",
    "DEFAULT_MAX_LINGER_S",
    "DEFAULT_SECRET_NAME",
    "DEFAULT_SYNC_WAIT_S",
    "DEFAULT_TOKEN_SCOPE",
    "SETTING_NAMES",
    "RateLimit",
    "Settings",
    "is_loopback_url",
    "parse_rate_limits",
]

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.security.microsoft.com"
DEFAULT_TOKEN_SCOPE = "https://api.securitycenter.microsoft.com/.default"
DEFAULT_SECRET_NAME = "defender-client-secret"
DEFAULT_BATCH_DELETE_LIMITS = "30/60s,1500/3600s"
DEFAULT_LIST_LIMITS = "100/60s,1500/3600s"
DEFAULT_SYNC_WAIT_S = 20.0
DEFAULT_LINGER_S = 1.0
DEFAULT_MAX_LINGER_S = 10.0
DEFAULT_CONCURRENCY = 8
# More calls in flight than one minute's limit allows would only wait.
MAX_CONCURRENCY = 30
DEFAULT_MAX_IDS_PER_REQUEST = 5_000
DEFAULT_MAX_DELETES_PER_DAY = 10_000
DEFAULT_AUDIT_RETENTION_DAYS = 90
_MAX_SYNC_WAIT_S = 200.0
# Every setting the app reads, including those the Functions host reads for
# it (timer schedules, storage). Deployment templates must define each one.
# WEBSITE_HOSTNAME is read too, but the platform sets it (App Service in
# Azure, Core Tools on a workstation), so no template defines it.
SETTING_NAMES = frozenset(
    {
        "DEFENDER_TENANT_ID",
        "DEFENDER_TENANT_IDS",
        "DEFENDER_CLIENT_ID",
        "KEY_VAULT_URL",
        "DEFENDER_CLIENT_SECRET_NAME",
        "DEFENDER_CLIENT_SECRET",
        "DEFENDER_API_URL",
        "DEFENDER_TOKEN_SCOPE",
        "AZURE_AUTHORITY_HOST",
        "AzureWebJobsStorage",
        "AzureWebJobsStorage__tableServiceUri",
        "BATCH_DELETE_RATE_LIMITS",
        "LIST_RATE_LIMITS",
        "SYNC_WAIT_SECONDS",
        "BATCH_LINGER_SECONDS",
        "BATCH_MAX_LINGER_SECONDS",
        "BATCH_CONCURRENCY",
        "MAX_IDS_PER_REQUEST",
        "MAX_DELETES_PER_DAY",
        "AUDIT_RETENTION_DAYS",
        "BATCH_DELETE_TIMER_SCHEDULE",
        "CLEANUP_SCHEDULE",
        "CLEANUP_POLICY",
        "PUBLIC_BASE_URL",
    }
)
_MAX_LINGER_S = 60.0

# Authority hosts that Entra ID's instance discovery knows. Any other host is
# a private or sovereign endpoint where discovery would fail, so it is off.
_KNOWN_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
    }
)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-zA-Z0-9-]{1,63}\.)+[a-zA-Z]{2,63}$")
_SECRET_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class RateLimit:
    """At most `calls` calls in any window of `window_s` seconds."""

    calls: int
    window_s: float

    def __str__(self) -> str:
        return f"{self.calls}/{self.window_s:g}s"


def parse_rate_limits(text: str) -> tuple[RateLimit, ...]:
    """Parse `"30/60s,1500/3600s"`; raises ValueError naming the bad part."""
    limits = []
    for part in text.split(","):
        match = _RATE.match(part)
        if not match:
            raise ValueError(f"{part.strip()!r} is not of the form CALLS/SECONDSs")
        calls, window, unit = match.groups()
        limit = RateLimit(int(calls), float(window) * _UNIT_SECONDS[unit])
        if limit.calls < 1 or limit.window_s <= 0:
            raise ValueError(f"{part.strip()!r} must allow at least one call")
        limits.append(limit)
    return tuple(sorted(limits, key=lambda limit: limit.window_s))


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is a loopback address or `localhost`."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Settings:
    """Everything the app reads from its environment."""

    tenant_id: str
    client_id: str
    key_vault_url: str | None
    secret_name: str
    client_secret: str | None = field(repr=False)
    api_url: str
    token_scope: str
    authority_host: str | None
    storage_connection_string: str | None = field(repr=False)
    table_service_uri: str | None
    batch_delete_limits: tuple[RateLimit, ...]
    list_limits: tuple[RateLimit, ...]
    sync_wait_s: float = DEFAULT_SYNC_WAIT_S
    linger_s: float = DEFAULT_LINGER_S
    max_linger_s: float = DEFAULT_MAX_LINGER_S
    concurrency: int = DEFAULT_CONCURRENCY
    extra_tenant_ids: tuple[str, ...] = ()
    max_ids_per_request: int = DEFAULT_MAX_IDS_PER_REQUEST
    max_deletes_per_day: int = DEFAULT_MAX_DELETES_PER_DAY
    audit_retention_days: int = DEFAULT_AUDIT_RETENTION_DAYS
    cleanup_policy: str | None = None
    public_base_url: str | None = None
    website_hostname: str | None = None

    def parsed_cleanup_policy(self) -> CleanupPolicy | None:
        """The validated cleanup policy, or None when no cleanup is set."""
        if not self.cleanup_policy:
            return None
        return CleanupPolicy.from_json(
            self.cleanup_policy, own_client_id=self.client_id
        )

    @property
    def tenant_ids(self) -> tuple[str, ...]:
        """The home tenant first, then the others requests may name."""
        others = (t for t in self.extra_tenant_ids if t != self.tenant_id)
        return (self.tenant_id, *others)

    @property
    def disable_instance_discovery(self) -> bool:
        """Instance discovery is off when a custom authority host is set."""
        if not self.authority_host:
            return False
        host = urlsplit(self.authority_host).hostname or ""
        return host.lower() not in _KNOWN_AUTHORITY_HOSTS

    def public_base_url_for(self, request_url: str) -> str:
        """Where callers reach the app, for the URLs it hands out: the scheme,
        host and any path prefix, without a trailing slash.

        `PUBLIC_BASE_URL` when set, else the host name App Service (or Core
        Tools, on a workstation) puts in `WEBSITE_HOSTNAME`. Only when neither
        is set and the request names a loopback host, as in local development,
        is that host used; otherwise "", which leaves the URL relative. The
        request's Host header is the caller's to choose, so a URL built from
        it could send whoever follows it, function key and all, elsewhere.
        """
        if self.public_base_url:
            return self.public_base_url
        request = urlsplit(request_url)
        scheme = request.scheme if request.scheme in ("http", "https") else "http"
        if self.website_hostname:
            # Core Tools serves http on localhost; App Service serves https.
            local = is_loopback_url(f"//{self.website_hostname}")
            return f"{scheme if local else 'https'}://{self.website_hostname}"
        if is_loopback_url(request_url):
            return f"{scheme}://{request.netloc.rpartition('@')[2]}"
        return ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting; raises SettingsError."""
        reader = _Reader(os.environ if environ is None else environ)
        settings = cls(
            tenant_id=reader.required("DEFENDER_TENANT_ID", _check_tenant),
            client_id=reader.required("DEFENDER_CLIENT_ID", _check_guid),
            key_vault_url=reader.optional("KEY_VAULT_URL", _check_https),
            secret_name=reader.optional(
                "DEFENDER_CLIENT_SECRET_NAME", _check_secret_name
            )
            or DEFAULT_SECRET_NAME,
            client_secret=reader.secret("DEFENDER_CLIENT_SECRET"),
            api_url=(
                reader.optional("DEFENDER_API_URL", _check_api_url) or DEFAULT_API_URL
            ).rstrip("/"),
            token_scope=reader.optional("DEFENDER_TOKEN_SCOPE", _check_scope)
            or DEFAULT_TOKEN_SCOPE,
            authority_host=reader.optional("AZURE_AUTHORITY_HOST", _check_https),
            storage_connection_string=reader.secret("AzureWebJobsStorage"),
            table_service_uri=reader.optional(
                "AzureWebJobsStorage__tableServiceUri", _check_https_or_loopback
            ),
            batch_delete_limits=reader.limits(
                "BATCH_DELETE_RATE_LIMITS", DEFAULT_BATCH_DELETE_LIMITS
            ),
            list_limits=reader.limits("LIST_RATE_LIMITS", DEFAULT_LIST_LIMITS),
            sync_wait_s=reader.seconds(
                "SYNC_WAIT_SECONDS", DEFAULT_SYNC_WAIT_S, _MAX_SYNC_WAIT_S
            ),
            linger_s=reader.seconds(
                "BATCH_LINGER_SECONDS", DEFAULT_LINGER_S, _MAX_LINGER_S
            ),
            max_linger_s=reader.seconds(
                "BATCH_MAX_LINGER_SECONDS", DEFAULT_MAX_LINGER_S, _MAX_LINGER_S
            ),
            concurrency=reader.count(
                "BATCH_CONCURRENCY", DEFAULT_CONCURRENCY, maximum=MAX_CONCURRENCY
            ),
            extra_tenant_ids=reader.tenants("DEFENDER_TENANT_IDS"),
            max_ids_per_request=reader.count(
                "MAX_IDS_PER_REQUEST",
                DEFAULT_MAX_IDS_PER_REQUEST,
                maximum=MAX_IDS_PER_JOB,
            ),
            max_deletes_per_day=reader.count(
                "MAX_DELETES_PER_DAY", DEFAULT_MAX_DELETES_PER_DAY
            ),
            audit_retention_days=reader.count(
                "AUDIT_RETENTION_DAYS", DEFAULT_AUDIT_RETENTION_DAYS
            ),
            cleanup_policy=reader.secret("CLEANUP_POLICY"),
            public_base_url=_no_trailing_slash(
                reader.optional("PUBLIC_BASE_URL", _check_base_url)
            ),
            website_hostname=reader.optional("WEBSITE_HOSTNAME", _check_host_name),
        )
        reader.check_cleanup_policy(settings)
        reader.check_secret_source(settings)
        reader.check_storage(settings)
        reader.raise_if_bad()
        return settings


class _Reader:
    """Collects every problem instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.problems: list[str] = []

    def _value(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def required(self, name: str, check: Callable[[str], str | None]) -> str:
        value = self._value(name)
        if value is None:
            self.problems.append(f"{name} is required and not set")
            return ""
        return self._checked(name, value, check)

    def optional(self, name: str, check: Callable[[str], str | None]) -> str | None:
        value = self._value(name)
        return None if value is None else self._checked(name, value, check)

    def secret(self, name: str) -> str | None:
        return self._value(name)

    def limits(self, name: str, default: str) -> tuple[RateLimit, ...]:
        text = self._value(name) or default
        try:
            return parse_rate_limits(text)
        except ValueError as exc:
            self.problems.append(f"{name}: {exc}")
            return parse_rate_limits(default)

    def count(self, name: str, default: int, maximum: int | None = None) -> int:
        text = self._value(name)
        if text is None:
            return default
        too_big = maximum is not None and text.isdigit() and int(text) > maximum
        if not text.isdigit() or int(text) < 1 or too_big:
            upper = f" and at most {maximum}" if maximum is not None else ""
            self.problems.append(f"{name} must be a whole number of at least 1{upper}")
            return default
        return int(text)

    def tenants(self, name: str) -> tuple[str, ...]:
        text = self._value(name)
        if text is None:
            return ()
        tenants = tuple(t.strip() for t in text.split(",") if t.strip())
        bad = [t for t in tenants if _check_tenant(t)]
        if bad or not tenants:
            self.problems.append(
                f"{name} must be a comma-separated list of tenant GUIDs or "
                f"domains; not valid: {', '.join(bad) or '(empty)'}"
            )
        return tuple(t.lower() for t in tenants if t not in bad)

    def seconds(self, name: str, default: float, maximum: float) -> float:
        text = self._value(name)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 <= value <= maximum:
            self.problems.append(f"{name} must be seconds from 0 to {maximum:g}")
            return default
        return value

    def _checked(
        self, name: str, value: str, check: Callable[[str], str | None]
    ) -> str:
        problem = check(value)
        if problem:
            self.problems.append(f"{name} {problem}")
        return value

    def check_secret_source(self, settings: Settings) -> None:
        if settings.key_vault_url and settings.client_secret:
            logger.warning(
                "DEFENDER_CLIENT_SECRET is ignored because KEY_VAULT_URL is set"
            )
        elif not settings.key_vault_url and not settings.client_secret:
            self.problems.append(
                "KEY_VAULT_URL is required (or, for local use only, "
                "DEFENDER_CLIENT_SECRET)"
            )
        elif not settings.key_vault_url:
            logger.warning(
                "the client secret is read from DEFENDER_CLIENT_SECRET; set "
                "KEY_VAULT_URL to read it from Key Vault outside local use"
            )

    def check_cleanup_policy(self, settings: Settings) -> None:
        if settings.cleanup_policy:
            try:
                CleanupPolicy.from_json(
                    settings.cleanup_policy, own_client_id=settings.client_id
                )
            except PolicyError as exc:
                self.problems.extend(f"CLEANUP_POLICY: {p}" for p in exc.problems)

    def check_storage(self, settings: Settings) -> None:
        if not settings.storage_connection_string and not settings.table_service_uri:
            self.problems.append(
                "AzureWebJobsStorage (or AzureWebJobsStorage__tableServiceUri) "
                "is required for job and pacing state"
            )

    def raise_if_bad(self) -> None:
        if self.problems:
            raise SettingsError(self.problems)


def _check_guid(value: str) -> str | None:
    return None if _GUID.match(value) else f"must be a GUID, got {value!r}"


def _check_tenant(value: str) -> str | None:
    if _GUID.match(value) or _DOMAIN.match(value):
        return None
    return f"must be a tenant GUID or domain name, got {value!r}"


def _check_secret_name(value: str) -> str | None:
    if _SECRET_NAME.match(value):
        return None
    return "must be 1-127 letters, digits and dashes"


def _check_scope(value: str) -> str | None:
    if value.startswith("https://") and value.endswith("/.default"):
        return None
    return "must be an https resource ending in /.default"


def _check_https(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        return f"must be an https URL, got {value!r}"
    return None


def _check_https_or_loopback(value: str) -> str | None:
    parts = urlsplit(value)
    if not parts.hostname or parts.scheme not in ("https", "http"):
        return f"must be a URL, got {value!r}"
    if parts.scheme == "http" and not is_loopback_url(value):
        return "must use https (http is allowed only for loopback addresses)"
    return None


def _check_api_url(value: str) -> str | None:
    problem = _check_https_or_loopback(value)
    if problem:
        return problem
    parts = urlsplit(value)
    if parts.path.strip("/") or parts.query or parts.fragment:
        return "must be the API host only, without a path or query"
    return None


def _check_base_url(value: str) -> str | None:
    problem = _check_https_or_loopback(value)
    if problem:
        return problem
    parts = urlsplit(value)
    if parts.query or parts.fragment or "@" in parts.netloc:
        return (
            "must be the URL callers reach the app at, without a user name, "
            f"query or fragment, got {value!r}"
        )
    return None


def _check_host_name(value: str) -> str | None:
    parts = urlsplit(f"//{value}")
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.hostname and port_ok and parts.netloc == value and "@" not in value:
        return None
    return f"must be a host name with an optional port, got {value!r}"


def _no_trailing_slash(url: str | None) -> str | None:
    return url.rstrip("/") if url else None
