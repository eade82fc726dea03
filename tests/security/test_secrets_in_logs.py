"""No log record of the session holds a secret, a token or a credential.

The scan itself lives in `tests/log_capture.py` and runs when the session
ends, over every record the whole session emitted; a finding fails the run.
These tests check that the capture and the scan work, and drive the paths
where the app logs about credentials (a rejected client secret, a vault that
refuses the managed identity, Defender refusing a token) so that the records
they produce are scanned here and now as well as at the end.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from emulator.auth import ROLE_ALL
from localdev.stack import REPO_ROOT, LocalStack
from shared.credentials import DefenderTokenProvider, SecretSource
from shared.settings import Settings
from tests.integration.helpers import body_of, post
from tests.log_capture import (
    CapturedRecord,
    Finding,
    captured_records,
    register_secret,
    registered_secrets,
    scan,
)

if TYPE_CHECKING:
    from tests.conftest import IsolatedApp

pytestmark = pytest.mark.integration

FAKE_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJlLXBhcnQ"


class RecordsOfThisTest:
    """The records the session capture kept since this object was made."""

    def __init__(self) -> None:
        self._start = len(captured_records())

    def records(self) -> list[CapturedRecord]:
        return captured_records()[self._start :]

    def findings(self) -> list[Finding]:
        return scan(self.records(), registered_secrets())


def test_the_capture_keeps_debug_records_and_exception_text() -> None:
    mark = RecordsOfThisTest()
    logger = logging.getLogger(f"tests.capture.{uuid.uuid4().hex}")

    logger.debug("a %s record", "debug")
    try:
        raise ValueError("the exception's own words")
    except ValueError:
        logger.exception("it failed")

    texts = {record.logger: [] for record in mark.records()}
    for record in mark.records():
        texts[record.logger].append(record.text)
    assert texts[logger.name][0] == "a debug record"
    assert "ValueError: the exception's own words" in texts[logger.name][1]
    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("read secret value s3cr3t-value-1234 from the vault", "test secret"),
        (f"token {FAKE_JWT} issued", "a bearer token (JWT)"),
        ("headers: {'Authorization': 'Basic dXNlcjpwYXNz'}", "Authorization"),
        ("Authorization: Bearer opaque-token-0123456789abcdef", "Authorization"),
        ("sent with bearer opaque-token-0123456789abcdef", "Bearer"),
    ],
)
def test_the_scan_finds_each_kind_of_secret_and_shows_it_redacted(
    text: str, what: str
) -> None:
    record = CapturedRecord("some.module", "INFO", text)
    planted = {"s3cr3t-value-1234": "test secret"}

    findings = scan([record], planted)

    assert findings, text
    assert all(f.logger == "some.module" for f in findings)
    assert any(what in f.what for f in findings)
    for finding in findings:
        shown = str(finding)
        for value in ("s3cr3t-value-1234", FAKE_JWT, "dXNlcjpwYXNz", "0123456789ab"):
            assert value not in shown


@pytest.mark.parametrize(
    "text",
    [
        "headers: {'Authorization': 'REDACTED', 'Accept': '*/*'}",
        "Authorization: ***",
        "the emulator says: a bearer token is required",
        "401 Unauthorized: the bearer token is not valid: Signature expired",
        '"token_type": "Bearer", "access_token": "********"',
    ],
)
def test_masked_or_absent_credentials_are_not_findings(text: str) -> None:
    assert scan([CapturedRecord("x", "DEBUG", text)], {}) == []


def test_the_stacks_secrets_are_registered_for_the_final_scan(
    stack: LocalStack,
) -> None:
    labels = set(registered_secrets().values())

    assert {
        "client secret",
        "function key",
        "Azurite account key",
        "identity header",
    } <= labels


def test_a_rejected_client_secret_is_logged_without_any_secret(
    stack: LocalStack, isolated_app: IsolatedApp, isolated_dry_run: dict[str, Any]
) -> None:
    assert stack.identity is not None
    mark = RecordsOfThisTest()
    rotated = secrets.token_urlsafe(24)
    register_secret(rotated, "rotated client secret")
    stack.identity.set_app_secrets(isolated_app.client_id, [rotated])
    try:
        response = post(isolated_dry_run)
    finally:
        stack.identity.set_app_secrets(
            isolated_app.client_id, [isolated_app.client_secret]
        )

    assert response.status_code == 502
    assert "token" in body_of(response)["error"]["message"]
    assert any("rejected the client secret" in r.text for r in mark.records())
    assert mark.findings() == []


def test_a_vault_refusing_the_identity_is_logged_without_any_secret(
    stack: LocalStack, isolated_app: IsolatedApp, isolated_dry_run: dict[str, Any]
) -> None:
    assert stack.identity is not None
    mark = RecordsOfThisTest()
    stack.identity.revoke_vault_access()
    try:
        response = post(isolated_dry_run)
    finally:
        stack.identity.grant_vault_access()

    assert response.status_code == 502
    assert any("Key Vault" in r.text for r in mark.records())
    assert mark.findings() == []


def test_defender_refusing_a_token_is_logged_without_the_token(
    stack: LocalStack, isolated_app: IsolatedApp, isolated_dry_run: dict[str, Any]
) -> None:
    assert stack.identity is not None
    mark = RecordsOfThisTest()
    tenant, client = isolated_app.tenant_id, isolated_app.client_id
    stack.identity.register_app(tenant, client, [isolated_app.client_secret], [])
    try:
        response = post(isolated_dry_run)
    finally:
        stack.identity.register_app(
            tenant, client, [isolated_app.client_secret], [ROLE_ALL]
        )

    assert response.status_code == 502
    refused = [r for r in mark.records() if r.logger == "shared.defender"]
    assert refused and all("403" in r.text for r in refused)
    assert mark.findings() == []


def test_a_successful_dry_run_logs_no_secret_or_token(
    isolated_app: IsolatedApp, isolated_dry_run: dict[str, Any]
) -> None:
    mark = RecordsOfThisTest()

    response = post(isolated_dry_run)

    assert response.status_code == 200
    loggers = {record.logger for record in mark.records()}
    assert {"shared.credentials", "shared.defender"} <= loggers
    assert mark.findings() == []


def test_settings_and_credential_holders_mask_secrets_in_their_reprs(
    stack: LocalStack,
) -> None:
    settings = Settings.from_environ(os.environ)
    source = SecretSource(settings)
    secret = source.get()

    assert settings.storage_connection_string
    assert settings.storage_connection_string not in repr(settings)
    assert secret not in repr(source)
    assert secret not in repr(DefenderTokenProvider(settings, source))


# --- the scan fails a whole session ------------------------------------------------

LEAKY_SESSION = """
import logging

import pytest

from tests.log_capture import register_secret

PLANTED = "planted-secret-0123456789"


@pytest.fixture(scope="session")
def leaks_when_torn_down():
    register_secret(PLANTED, "planted secret")
    yield
    logging.getLogger("leaky.teardown").debug("closing with %s", {LEAK})


def test_passes(leaks_when_torn_down):
    logging.getLogger("quiet").info("nothing to see")
"""
SESSION_TIMEOUT_S = 120


def run_session(tmp_path: Path, leak: str) -> subprocess.CompletedProcess[str]:
    """A pytest session of its own with the capture plugin, in `tmp_path`."""
    (tmp_path / "test_session.py").write_text(LEAKY_SESSION.replace("{LEAK}", leak))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.log_capture", "-q"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=SESSION_TIMEOUT_S,
        check=False,
    )


def test_a_secret_logged_at_the_last_teardown_fails_the_session(
    tmp_path: Path,
) -> None:
    done = run_session(tmp_path, "PLANTED")

    assert done.returncode == 1, done.stdout
    assert "1 passed" in done.stdout
    assert "secrets in logs" in done.stdout
    assert "[DEBUG leaky.teardown] planted secret" in done.stdout
    assert "planted-secret-0123456789" not in done.stdout


def test_a_session_with_clean_logs_passes(tmp_path: Path) -> None:
    done = run_session(tmp_path, "'nothing secret'")

    assert done.returncode == 0, done.stdout
    assert "nothing found" in done.stdout
