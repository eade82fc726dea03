"""Session fixtures: the real local stack (Azurite, the Defender emulator,
the identity stand-ins and the functions host) shared by integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
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


StartWorker = Callable[..., WorkerProcess]
LEFTOVER_DRAIN_ROUNDS = 3
LEFTOVER_DRAIN_S = 120.0


@pytest.fixture
def start_worker(stack: LocalStack, tmp_path: Path) -> Iterator[StartWorker]:
    """Start worker processes with the app settings plus `env` overrides."""
    started: list[WorkerProcess] = []

    def start(
        *,
        seconds: float = 90,
        idle_exit: bool = True,
        env: dict[str, str] | None = None,
    ) -> WorkerProcess:
        log_path = tmp_path / f"worker-{len(started)}.log"
        args = [sys.executable, "-m", "localdev.worker", "--seconds", str(seconds)]
        if idle_exit:
            args.append("--idle-exit")
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                args,
                env=os.environ | stack.settings | (env or {}),
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(process, log_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


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


@pytest.fixture
def stored_pieces(state_table: TableClient) -> StoredPieces:
    return StoredPieces(state_table)


@pytest.fixture
def leaves_no_work(
    stack: LocalStack, stored_pieces: StoredPieces, start_worker: StartWorker
) -> Iterator[None]:
    """After the test, finish whatever it left unfinished in the shared
    partition, in a well-behaved emulator, so later tests start clean."""
    yield
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
        if not stored_pieces.expire_leases():
            return
        start_worker().wait(LEFTOVER_DRAIN_S)
    assert not stored_pieces.unfinished(), "work was left that no worker finished"
