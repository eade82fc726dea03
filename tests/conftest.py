"""Session fixtures: the real local stack (Azurite, the Defender emulator,
the identity stand-ins and the functions host) shared by integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableClient, UpdateMode

from emulator import Faults, load_seed
from localdev.stack import LOCAL_TENANT_ID, REPO_ROOT, LocalStack, StackOptions
from shared.jobs import JobStore
from shared.settings import Settings
from shared.storage import open_state_table

# Faster windows than Defender's, same shape, so tests never wait long.
TEST_BATCH_LIMITS = "30/2s,1500/120s"
TEST_LIST_LIMITS = "100/2s,1500/120s"


TENANT_SIZE = 3000


@pytest.fixture(scope="session")
def seed_indicators() -> list[dict[str, Any]]:
    """The 15,000 seed indicators, times shifted to now."""
    return load_seed()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    workdir: Path = tmp_path_factory.mktemp("stack")
    options = StackOptions(
        workdir=workdir,
        keep_storage=False,
        seed=False,
        batch_delete_limits=TEST_BATCH_LIMITS,
        list_limits=TEST_LIST_LIMITS,
        settings={
            "SYNC_WAIT_SECONDS": "20",
            "BATCH_LINGER_SECONDS": "0.2",
            # Tests delete far more than a real day's cap; caps have own tests.
            "MAX_IDS_PER_REQUEST": "49000",
            "MAX_DELETES_PER_DAY": "10000000",
        },
    )
    with LocalStack(options) as running:
        yield running


@pytest.fixture
def tenant(
    stack: LocalStack, seed_indicators: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """A fresh tenant of 3,000 seed indicators in a well-behaved emulator."""
    assert stack.emulator is not None
    emulator = stack.emulator.emulator
    emulator.configure(partial_failure="none", exposure={}, faults=Faults())
    rows = seed_indicators[:TENANT_SIZE]
    emulator.load(rows)
    emulator.reset_limits()
    emulator.clear_calls()
    return [dict(row) for row in rows]


# --- Worker processes and direct job access (tests/integration/test_durability.py)
#
# Worker processes run `python -m localdev.worker` against the session stack,
# as separate function instances do. Each one writes its log to the test's
# temporary directory and is killed at teardown, whatever the test did.


@dataclass
class WorkerProcess:
    """A running `localdev.worker` process and the file holding its log."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to record anything."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def wait(self, timeout_s: float) -> int:
        """The exit code; raises subprocess.TimeoutExpired."""
        return self.process.wait(timeout=timeout_s)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


LEFTOVER_DRAIN_ROUNDS = 3
LEFTOVER_DRAIN_S = 120.0


class StartWorker:
    """Starts worker processes with the app settings plus `env` overrides,
    and remembers them so that none outlives the test."""

    def __init__(self, settings: dict[str, str], log_dir: Path) -> None:
        self._settings = settings
        self._log_dir = log_dir
        self.started: list[WorkerProcess] = []

    def __call__(
        self,
        *,
        seconds: float = 90,
        idle_exit: bool = True,
        env: dict[str, str] | None = None,
    ) -> WorkerProcess:
        log_path = self._log_dir / f"worker-{len(self.started)}.log"
        args = [sys.executable, "-m", "localdev.worker", "--seconds", str(seconds)]
        if idle_exit:
            args.append("--idle-exit")
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                args,
                env=os.environ | self._settings | (env or {}),
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(process, log_path)
        self.started.append(worker)
        return worker

    def kill_all(self) -> None:
        for worker in self.started:
            worker.kill()


@pytest.fixture
def start_worker(stack: LocalStack, tmp_path: Path) -> Iterator[StartWorker]:
    launcher = StartWorker(stack.settings, tmp_path)
    yield launcher
    launcher.kill_all()


@pytest.fixture
def state_table(stack: LocalStack) -> Iterator[TableClient]:
    """The app's state table in Azurite (created if no test made it yet)."""
    table = open_state_table(Settings.from_environ(os.environ | stack.settings))
    with table:
        yield table


@pytest.fixture
def job_store(state_table: TableClient) -> JobStore:
    """The home tenant's jobs, as the app stores them."""
    return JobStore(state_table, LOCAL_TENANT_ID.lower())


class StoredPieces:
    """The home tenant's job pieces as rows, for what `JobStore` does not
    offer: finding unfinished work and ending leases early."""

    def __init__(self, table: TableClient) -> None:
        self._table = table
        self._partition = LOCAL_TENANT_ID.lower()

    def unfinished(self) -> list[dict[str, Any]]:
        query = (
            "PartitionKey eq @partition and RowKey ge 'piece-' and "
            "RowKey lt 'piece-~' and State ne 'done'"
        )
        rows = self._table.query_entities(
            query, parameters={"partition": self._partition}
        )
        return [dict(row) for row in rows]

    def expire_leases(self) -> int:
        """End every claim and retry wait now, as if their time had passed."""
        rows = self.unfinished()
        for row in rows:
            self._table.update_entity(
                {
                    "PartitionKey": row["PartitionKey"],
                    "RowKey": row["RowKey"],
                    "LeaseUntil": time.time() - 1,
                    "NotBefore": 0.0,
                },
                mode=UpdateMode.MERGE,
            )
        return len(rows)

    def forget_budgets(self) -> None:
        """Empty the shared rate budgets. A killed worker's reservations
        count as in flight for minutes, and would slow whoever comes next."""
        query = "PartitionKey eq @partition and RowKey ge 'budget-' and "
        query += "RowKey lt 'budget-~'"
        rows = self._table.query_entities(
            query, parameters={"partition": self._partition}
        )
        for row in list(rows):
            self._table.delete_entity(row["PartitionKey"], row["RowKey"])


@pytest.fixture
def stored_pieces(state_table: TableClient) -> StoredPieces:
    return StoredPieces(state_table)


@pytest.fixture
def leaves_no_work(
    stack: LocalStack, stored_pieces: StoredPieces, start_worker: StartWorker
) -> Iterator[None]:
    """Start with empty rate budgets; afterwards finish whatever the test
    left unfinished in the shared partition, in a well-behaved emulator, and
    empty the budgets again, so later tests start clean."""
    stored_pieces.forget_budgets()
    yield
    start_worker.kill_all()
    assert stack.azurite is not None and stack.emulator is not None
    if not stack.azurite.running:
        stack.azurite.start()
    stack.azurite.resume()
    stack.emulator.emulator.configure(
        faults=Faults(),
        batch_delete_limits=stack.options.batch_delete_limits,
        list_limits=stack.options.list_limits,
    )
    for _ in range(LEFTOVER_DRAIN_ROUNDS):
        stored_pieces.forget_budgets()
        if not stored_pieces.expire_leases():
            break
        start_worker().wait(LEFTOVER_DRAIN_S)
    stored_pieces.forget_budgets()
    assert not stored_pieces.unfinished(), "work was left that no worker finished"


# --- Security tests (tests/security, tests/unit/test_properties.py) -----------
#
# Self-contained: everything this block needs is imported here. It offers an
# app configuration of its own (tenant, app registration and Key Vault secret
# name) for tests that throw arbitrary input at the functions, so nothing they
# do reaches the home tenant's jobs, budget or daily cap; a loopback "canary"
# server that must never be called; and the session-wide log capture, whose
# secret scan runs when the session ends (see tests/log_capture.py).

import secrets  # noqa: E402
import uuid  # noqa: E402
from dataclasses import field  # noqa: E402

from azure.data.tables import TableServiceClient  # noqa: E402
from werkzeug.wrappers import Request, Response  # noqa: E402

from localdev.servers import serve  # noqa: E402
from localdev.stack import LOCAL_CLIENT_ID  # noqa: E402
from shared.caps import DailyCap  # noqa: E402

SECURITY_ROLE = "Ti.ReadWrite.All"
# The isolated app may delete one indicator a day and has already done so:
# every valid request that is not a dry run is refused before a job exists.
ISOLATED_APP_DAILY_CAP = 1
_SECONDS_PER_DAY = 86_400
# The isolated app paces List calls loosely (the emulator still enforces
# Defender's limits and answers 429 past them): a request that fails before
# it is sent leaves its slot counted as in flight for minutes, and a fuzz run
# sends many such requests (see tests/security/test_limits.py).
ISOLATED_APP_LIST_LIMITS = "100000/2s,1000000/120s"


@dataclass(frozen=True)
class IsolatedApp:
    """An app configuration of its own, applied to os.environ by its fixture."""

    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    secret_name: str = ""
    environ: dict[str, str] = field(default_factory=dict)

    def unfinished_pieces(self, table: TableClient) -> list[dict[str, Any]]:
        query = (
            "PartitionKey eq @partition and RowKey ge 'piece-' and "
            "RowKey lt 'piece-~' and State ne 'done'"
        )
        rows = table.query_entities(
            query, parameters={"partition": self.tenant_id.lower()}
        )
        return [dict(row) for row in rows]


def _exhaust_daily_cap(table: TableClient, partition: str) -> None:
    """Use up today's and tomorrow's allowance (a run may cross midnight)."""
    now = time.time()
    for offset in (0, _SECONDS_PER_DAY):
        cap = DailyCap(
            table, partition, ISOLATED_APP_DAILY_CAP, clock=lambda o=offset: now + o
        )
        cap.reserve(ISOLATED_APP_DAILY_CAP)


@pytest.fixture(scope="module")
def isolated_app(stack: LocalStack) -> Iterator[IsolatedApp]:
    """The functions configured for a fresh tenant and app registration.

    Non-dry-run deletes are refused by the exhausted daily cap, requests answer
    at once (no synchronous wait), and no other tenant may be named. At the end
    no unfinished work may be left in the tenant's partition.
    """
    from tests.log_capture import register_secret

    assert stack.identity is not None
    tenant, client = str(uuid.uuid4()), str(uuid.uuid4())
    secret = secrets.token_urlsafe(24)
    secret_name = f"isolated-{uuid.uuid4().hex[:12]}"
    register_secret(secret, "isolated app's client secret")
    stack.identity.register_app(tenant, client, [secret], [SECURITY_ROLE])
    stack.identity.set_secret(secret_name, secret)
    environ = {
        "DEFENDER_TENANT_ID": tenant,
        "DEFENDER_CLIENT_ID": client,
        "DEFENDER_CLIENT_SECRET_NAME": secret_name,
        "MAX_DELETES_PER_DAY": str(ISOLATED_APP_DAILY_CAP),
        "SYNC_WAIT_SECONDS": "0",
        "LIST_RATE_LIMITS": ISOLATED_APP_LIST_LIMITS,
    }
    app = IsolatedApp(tenant, client, secret, secret_name, environ)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environ.items():
            patch.setenv(name, value)
        patch.delenv("DEFENDER_TENANT_IDS", raising=False)
        table = open_state_table(Settings.from_environ())
        with table:
            _exhaust_daily_cap(table, tenant.lower())
            yield app
            assert not app.unfinished_pieces(table), "the isolated app left work"


# Dry runs list the whole emulated tenant; a small one keeps them quick.
SMALL_TENANT_SIZE = 40


@pytest.fixture(scope="module")
def small_emulated_tenant(
    stack: LocalStack, seed_indicators: list[dict[str, Any]]
) -> Iterator[list[dict[str, Any]]]:
    """A few seed indicators in the emulator; what was there comes back after."""
    assert stack.emulator is not None
    emulator = stack.emulator.emulator
    before = emulator.indicators()
    rows = seed_indicators[:SMALL_TENANT_SIZE]
    emulator.load(rows)
    try:
        yield [dict(row) for row in rows]
    finally:
        emulator.load(before)


@pytest.fixture
def home_app_registered(stack: LocalStack) -> None:
    """Make sure the home app registration signs in to the home tenant.

    The identity stand-in keeps one tenant per app registration, and tests
    that try other tenants re-register the home app's client ID there.
    """
    assert stack.identity is not None
    stack.identity.register_app(
        LOCAL_TENANT_ID, LOCAL_CLIENT_ID, [stack.client_secret], [SECURITY_ROLE]
    )


FUNCTION_ROUTE = "/indicators/batch-delete"


@pytest.fixture
def function_url(stack: LocalStack) -> str:
    """The HTTP function's URL on the local functions host."""
    assert stack.host is not None
    return stack.host.base_url + FUNCTION_ROUTE


@pytest.fixture
def function_key(stack: LocalStack) -> str:
    """The local host's function key (send it in a header, never a query
    string: the HTTP client's debug log records query strings)."""
    assert stack.host is not None
    return stack.host.function_key


@pytest.fixture
def fresh_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """A configuration no call used yet, so the app builds a new service: the
    secret is read from the vault and a token fetched, not taken from a cache.
    The retention setting is part of the configuration and harmless to vary."""
    monkeypatch.setenv("AUDIT_RETENTION_DAYS", str(uuid.uuid4().int % 900 + 100))


@pytest.fixture
def other_tenant(monkeypatch: pytest.MonkeyPatch) -> str:
    """A second tenant the app serves. No app registration is made there: the
    identity stand-in keeps one tenant per app, so tests write that tenant's
    jobs straight into its partition."""
    tenant = str(uuid.uuid4())
    monkeypatch.setenv("DEFENDER_TENANT_IDS", tenant)
    return tenant


@pytest.fixture
def isolated_dry_run(isolated_app: IsolatedApp, fresh_service: None) -> dict[str, Any]:
    """A dry run's body for the isolated app, sent through a fresh service."""
    return {"IndicatorIds": ["40050"], "dryRun": True, "requestedBy": "dry-run"}


BUDGET_PROPERTIES_TABLE = "budgetproperties"


@pytest.fixture
def budget_table(stack: LocalStack) -> Iterator[TableClient]:
    """A table of its own in the session's Azurite, for budget properties."""
    assert stack.azurite is not None
    service = TableServiceClient.from_connection_string(stack.azurite.connection_string)
    with service:
        table = service.create_table_if_not_exists(BUDGET_PROPERTIES_TABLE)
        with table:
            yield table


@dataclass
class CanaryServer:
    """A loopback HTTP server that records every request it receives."""

    url: str
    received: list[str]

    @property
    def netloc(self) -> str:
        return self.url.split("://", 1)[1]


@pytest.fixture
def canary_server() -> Iterator[CanaryServer]:
    """A server nothing should call; `received` lists what called it anyway."""
    received: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        received.append(f"{request.method} {request.path}")
        return Response(b"{}", status=200)(environ, start_response)

    running = serve(app)
    try:
        yield CanaryServer(running.url, received)
    finally:
        running.stop()


pytest_plugins = ["tests.log_capture"]


@pytest.fixture
def host_timers_stopped(stack: LocalStack) -> Iterator[None]:
    """The session host's timer, which drains pending work every minute with
    the session's settings, stays off while the test decides who works."""
    assert stack.host is not None
    stack.host.host.stop()
    yield
    stack.host.host.start()
