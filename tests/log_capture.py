"""Session-wide log capture and the end-of-session secret scan.

Loaded from `tests/conftest.py`. At session start a handler at DEBUG goes on
the root logger (and the root logger itself is opened to DEBUG), so every
record any test, fixture, product module or local service emits in this
process is kept: its formatted message, plus exception and stack text.

When the session has finished, after every fixture has been torn down, the
kept records are scanned for:

- every secret registered with `register_secret` (the session stack's client
  secret, function key, Azurite account key and managed-identity header are
  registered automatically when the `stack` fixture is set up, and every
  client secret the identity stand-ins ever held is added at the end);
- anything shaped like a bearer token (a JWT: ``eyJ...``.``eyJ...``);
- the value of an ``Authorization`` header or ``Bearer`` credential.

A finding turns a passing run into a failing one (exit status 1) and is
listed, with the logger's name and an excerpt in which the secret itself is
replaced by a label, in a "secrets in logs" section of the terminal summary.

Why `pytest_sessionfinish` and not a session fixture: a fixture's teardown
runs while other session fixtures (the stack itself) may still have to stop,
and their shutdown logs would escape the scan. `pytest_sessionfinish` runs
once everything else is over, and pytest returns whatever `session.exitstatus`
holds after it, so the scan sees the whole session and can still fail it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

__all__ = [
    "CapturedRecord",
    "Finding",
    "captured_records",
    "register_secret",
    "registered_secrets",
    "scan",
]

# Secrets shorter than this are too likely to occur by chance in other text.
MIN_SECRET_CHARS = 8
EXCERPT_CHARS = 60
MAX_LISTED_FINDINGS = 20

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# `Authorization: x`, `'Authorization': 'x'`, `authorization=x` ...
AUTHORIZATION = re.compile(
    r"authorization[\"']?\s*[:=]\s*[\"']?(?P<value>[^\"'\s,;}\]]+(?: [^\"'\s,;}\]]+)?)",
    re.IGNORECASE,
)
BEARER = re.compile(r"\bbearer\s+(?P<value>[A-Za-z0-9._~+/=-]{16,})", re.IGNORECASE)
# What well-behaved code logs in place of a credential.
_MASKS = ("redacted", "***", "[secure]", "<hidden>", "[filtered]", "none")


@dataclass(frozen=True)
class CapturedRecord:
    logger: str
    level: str
    text: str


@dataclass(frozen=True)
class Finding:
    """One record that holds something it must not."""

    logger: str
    level: str
    what: str
    excerpt: str

    def __str__(self) -> str:
        return f"[{self.level} {self.logger}] {self.what}: {self.excerpt}"


class _KeepEverything(logging.Handler):
    """Keeps each record's full text (message, exception, stack)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[CapturedRecord] = []
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(
            CapturedRecord(record.name, record.levelname, self._text(record))
        )

    def _text(self, record: logging.LogRecord) -> str:
        try:
            parts = [record.getMessage()]
        except Exception:  # a bad format string must not hide its arguments
            parts = [str(record.msg), repr(record.args)]
        if record.exc_info:
            parts.append(self._formatter.formatException(record.exc_info))
        elif record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self._formatter.formatStack(record.stack_info))
        return "\n".join(parts)


class _Session:
    """The capture's state for one pytest session."""

    def __init__(self) -> None:
        self.handler = _KeepEverything()
        self.secrets: dict[str, str] = {}
        self.identity_stand_ins: list[Any] = []
        self.findings: list[Finding] = []
        self.old_root_level = logging.WARNING
        self.lock = threading.Lock()


_state = _Session()


def register_secret(value: str | None, label: str) -> None:
    """Add a value that no log record may contain, named `label` in reports."""
    if value and len(value) >= MIN_SECRET_CHARS:
        with _state.lock:
            _state.secrets.setdefault(value, label)


def registered_secrets() -> dict[str, str]:
    """The values registered so far, each with its label."""
    with _state.lock:
        return dict(_state.secrets)


def captured_records() -> list[CapturedRecord]:
    """Every record kept so far in this session."""
    return list(_state.handler.records)


def scan(records: Iterable[CapturedRecord], secrets: dict[str, str]) -> list[Finding]:
    """The findings in `records`, given secret values and their labels."""
    findings = []
    for record in records:
        findings.extend(_findings_in(record, secrets))
    return findings


def _findings_in(record: CapturedRecord, secrets: dict[str, str]) -> Iterator[Finding]:
    text = record.text
    for value, label in secrets.items():
        at = text.find(value)
        if at >= 0:
            yield _finding(record, label, at, secrets)
    for match in JWT.finditer(text):
        yield _finding(record, "a bearer token (JWT)", match.start(), secrets)
    for pattern, what in (
        (AUTHORIZATION, "an Authorization header value"),
        (BEARER, "a Bearer credential"),
    ):
        for match in pattern.finditer(text):
            value = match.group("value")
            if not value.strip("'\"").lower().startswith(_MASKS):
                yield _finding(record, what, match.start("value"), secrets)


def _finding(
    record: CapturedRecord, what: str, at: int, secrets: dict[str, str]
) -> Finding:
    start = max(0, at - EXCERPT_CHARS // 2)
    excerpt = record.text[start : at + EXCERPT_CHARS]
    return Finding(record.logger, record.level, what, _redacted(excerpt, secrets))


def _redacted(text: str, secrets: dict[str, str]) -> str:
    """`text` with every secret, token and credential replaced by a label."""
    for value, label in secrets.items():
        text = text.replace(value, f"[{label}]")
        # An excerpt may cut a secret; hide any partial of 8+ characters too.
        for size in range(len(value) - 1, MIN_SECRET_CHARS - 1, -1):
            text = text.replace(value[:size], f"[{label}, cut]")
            text = text.replace(value[-size:], f"[{label}, cut]")
    text = JWT.sub("[token]", text)
    text = BEARER.sub("Bearer [credential]", text)
    text = AUTHORIZATION.sub("Authorization: [credential]", text)
    return " ".join(text.split())


def _register_stack(stack: Any) -> None:
    """Register what the session's `LocalStack` knows that must stay secret."""
    register_secret(getattr(stack, "client_secret", None), "client secret")
    host = getattr(stack, "host", None)
    register_secret(getattr(host, "function_key", None), "function key")
    settings = getattr(stack, "settings", {}) or {}
    connection = settings.get("AzureWebJobsStorage", "")
    for part in connection.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() == "accountkey":
            register_secret(value, "Azurite account key")
    register_secret(settings.get("IDENTITY_HEADER"), "identity header")
    register_secret(settings.get("DEFENDER_CLIENT_SECRET"), "client secret setting")
    identity = getattr(stack, "identity", None)
    if identity is not None:
        _state.identity_stand_ins.append(identity)


def _register_stand_in_secrets() -> None:
    """Every client secret the identity stand-ins held, including rotations."""
    for identity in _state.identity_stand_ins:
        vault = getattr(identity, "vault", None)
        for versions in getattr(vault, "_secrets", {}).values():
            for version in versions:
                register_secret(getattr(version, "value", None), "Key Vault secret")
        entra = getattr(identity, "entra", None)
        for app in getattr(entra, "_apps", {}).values():
            for secret in getattr(app, "secrets", ()):
                register_secret(secret, "app registration secret")


def pytest_sessionstart(session: pytest.Session) -> None:
    root = logging.getLogger()
    _state.old_root_level = root.level
    root.addHandler(_state.handler)
    root.setLevel(logging.DEBUG)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Iterator[Any]:
    result = yield
    if fixturedef.argname == "stack":
        _register_stack(result)
    return result


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    root = logging.getLogger()
    root.removeHandler(_state.handler)
    root.setLevel(_state.old_root_level)
    _register_stand_in_secrets()
    _state.findings = scan(_state.handler.records, dict(_state.secrets))
    if _state.findings and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    records = len(_state.handler.records)
    if not _state.findings:
        terminalreporter.write_line(
            f"secret scan: {records} log records, "
            f"{len(_state.secrets)} secrets checked, nothing found"
        )
        return
    terminalreporter.section("secrets in logs", sep="=", red=True, bold=True)
    for finding in _state.findings[:MAX_LISTED_FINDINGS]:
        terminalreporter.write_line(str(finding))
    more = len(_state.findings) - MAX_LISTED_FINDINGS
    if more > 0:
        terminalreporter.write_line(f"... and {more} more")
    terminalreporter.write_line(
        f"{len(_state.findings)} finding(s) in {records} log records: the run fails"
    )
