"""Session fixtures: the real local stack (Azurite, the Defender emulator,
the identity stand-ins and the functions host) shared by integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator import Faults, load_seed
from localdev.stack import LocalStack, StackOptions

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
        settings={"SYNC_WAIT_SECONDS": "20", "BATCH_LINGER_SECONDS": "0.2"},
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
