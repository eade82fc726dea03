"""Fixtures for the emulator tests: served emulators, tokens, sample rows.

Every test talks to a real emulator over HTTP on a loopback port. The
function-scoped emulator starts empty; the session-scoped one holds the
15,000 seed indicators and must only be read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from emulator import DefenderEmulator, EmulatorConfig, RunningEmulator, start_emulator
from localdev.tokens import TokenSigner

AUDIENCE = "https://api.securitycenter.microsoft.com"
TENANT = "11111111-1111-1111-1111-111111111111"
APP = "22222222-2222-2222-2222-222222222222"
OTHER_APP = "33333333-3333-3333-3333-333333333333"
ROLE_ALL = "Ti.ReadWrite.All"
START = 1_900_000_000.0  # a fixed "now" for tests that drive the clock


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Client:
    """Calls one emulator with one bearer token."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.base_url + path, timeout=10, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.delete(self.base_url + path, timeout=10, **kwargs)

    def batch_delete(self, ids: Any) -> requests.Response:
        return self.post("/api/indicators/BatchDelete", json={"IndicatorIds": ids})

    def list(self, **params: Any) -> requests.Response:
        return self.get("/api/indicators", params=params)

    def listed_ids(self, **params: Any) -> list[str]:
        response = self.list(**params)
        assert response.status_code == 200, response.text
        return [row["id"] for row in response.json()["value"]]


def make_row(indicator_id: int | str, **fields: Any) -> dict[str, Any]:
    """A complete indicator like the seed's, with `fields` overriding."""
    row: dict[str, Any] = {
        "id": str(indicator_id),
        "indicatorValue": f"198.51.100.{int(indicator_id) % 250}",
        "indicatorType": "IpAddress",
        "action": "Block",
        "application": "MISP to Defender",
        "sourceType": "AadApp",
        "createdBy": APP,
        "createdByDisplayName": "MISP to Defender",
        "createdBySource": "MISP to Defender",
        "creationTimeDateTimeUtc": "2026-11-01T10:00:00.1234567Z",
        "expirationTime": None,
        "lastUpdateTime": "2026-11-01T10:00:00.1234567Z",
        "lastUpdatedBy": APP,
        "severity": "Medium",
        "title": "TI: test indicator",
        "description": "Imported from feed",
        "recommendedActions": None,
        "rbacGroupNames": [],
        "rbacGroupIds": [],
        "generateAlert": True,
        "externalID": None,
        "educateUrl": None,
    }
    row.update(fields)
    return row


@pytest.fixture(scope="session")
def signer() -> TokenSigner:
    return TokenSigner()


@pytest.fixture
def make_token(signer: TokenSigner) -> Callable[..., str]:
    def make(
        *,
        app_id: str = APP,
        roles: tuple[str, ...] = (ROLE_ALL,),
        audience: str = AUDIENCE,
        tenant_id: str = TENANT,
        lifetime_s: int = 3600,
    ) -> str:
        token, _ = signer.issue(
            audience=audience,
            tenant_id=tenant_id,
            app_id=app_id,
            roles=roles,
            lifetime_s=lifetime_s,
        )
        return token

    return make


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def running(signer: TokenSigner) -> Iterator[RunningEmulator]:
    """One emulator for the session; `emulator` resets it for every test."""
    with start_emulator(EmulatorConfig(signer=signer), seed=False) as served:
        yield served


@pytest.fixture
def emulator(
    running: RunningEmulator, signer: TokenSigner, clock: FakeClock
) -> DefenderEmulator:
    """The served emulator, empty, with default settings and `clock`."""
    running.emulator.reset(EmulatorConfig(signer=signer, clock=clock))
    return running.emulator


@pytest.fixture
def client_for(
    running: RunningEmulator,
    emulator: DefenderEmulator,
    make_token: Callable[..., str],
) -> Iterator[Callable[..., Client]]:
    """Make a client for the emulator with a token built from the given claims."""
    clients: list[Client] = []

    def make(**claims: Any) -> Client:
        clients.append(Client(running.url, make_token(**claims)))
        return clients[-1]

    yield make
    for client in clients:
        client.session.close()


@pytest.fixture
def api(client_for: Callable[..., Client]) -> Client:
    """A client holding Ti.ReadWrite.All for APP."""
    return client_for()


@pytest.fixture
def control(running: RunningEmulator, emulator: DefenderEmulator) -> Iterator[Client]:
    """A client with no token, for the /_emulator/ endpoints."""
    client = Client(running.url, None)
    yield client
    client.session.close()


@pytest.fixture(scope="session")
def seeded(signer: TokenSigner) -> Iterator[RunningEmulator]:
    """The seed tenant on the real clock, without rate limits. Read only."""
    config = EmulatorConfig(signer=signer, list_limits="")
    with start_emulator(config, seed=True) as served:
        yield served


@pytest.fixture(scope="session")
def seeded_api(seeded: RunningEmulator, signer: TokenSigner) -> Client:
    token, _ = signer.issue(
        audience=AUDIENCE, tenant_id=TENANT, app_id=APP, roles=[ROLE_ALL]
    )
    return Client(seeded.url, token)


@pytest.fixture(scope="session")
def app_id() -> str:
    """The app ID in the default tokens and the default rows' createdBy."""
    return APP


@pytest.fixture(scope="session")
def tenant_id() -> str:
    """The tenant ID in the default tokens."""
    return TENANT


@pytest.fixture(scope="session")
def row() -> Callable[..., dict[str, Any]]:
    """Build an indicator: ``row(10051, severity="High")``."""
    return make_row


@pytest.fixture
def tenant(emulator: DefenderEmulator) -> Callable[..., list[str]]:
    """Load rows built by `make_row` for the given IDs; returns the IDs."""

    def load(*rows: dict[str, Any]) -> list[str]:
        emulator.load(list(rows))
        return [r["id"] for r in rows]

    return load
