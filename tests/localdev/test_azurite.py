"""The Azurite runner, with the Azure Tables SDK the function app uses.

These need Azurite from npm (`npm ci` in the repository root). Without it they
fail with that hint instead of being skipped.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ServiceResponseError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from localdev.azurite import INSTALL_HINT, Azurite, AzuriteError

# A frozen Azurite must make a call fail fast, not after the SDK's retries.
PAUSED_CALL_TIMEOUT_S = 1
NO_RETRIES = 0


@pytest.fixture(scope="module")
def shared_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with Azurite(tmp_path_factory.mktemp("azurite-shared")) as azurite:
        yield azurite


@pytest.fixture
def own_azurite(tmp_path: Path) -> Iterator[Azurite]:
    with Azurite(tmp_path / "azurite") as azurite:
        yield azurite


def _new_table(azurite: Azurite, **client_options: int) -> TableClient:
    service = TableServiceClient.from_connection_string(
        azurite.connection_string, **client_options
    )
    return service.create_table(f"t{uuid.uuid4().hex}")


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_start_listens_and_stop_closes_the_port(tmp_path: Path) -> None:
    azurite = Azurite(tmp_path).start()
    port = azurite.port

    assert _accepts_connections(port)
    assert azurite.table_endpoint == f"http://127.0.0.1:{port}/devstoreaccount1"
    assert f"TableEndpoint={azurite.table_endpoint};" in azurite.connection_string
    azurite.stop()
    assert not azurite.running
    assert not _accepts_connections(port)


def test_missing_binary_error_says_how_to_install(tmp_path: Path) -> None:
    azurite = Azurite(tmp_path, binary=tmp_path / "no-azurite-here")

    with pytest.raises(AzuriteError, match="npm ci"):
        azurite.start()
    assert "npm ci" in INSTALL_HINT


def test_repr_does_not_show_the_account_key(shared_azurite: Azurite) -> None:
    assert "AccountKey" not in repr(shared_azurite)


def test_table_round_trip_with_the_sdk(shared_azurite: Azurite) -> None:
    table = _new_table(shared_azurite)

    table.upsert_entity({"PartitionKey": "job", "RowKey": "1", "state": "queued"})
    table.upsert_entity({"PartitionKey": "job", "RowKey": "2", "state": "done"})
    found = list(table.query_entities("state eq @state", parameters={"state": "done"}))

    assert [entity["RowKey"] for entity in found] == ["2"]


def test_update_with_a_stale_etag_is_412(shared_azurite: Azurite) -> None:
    table = _new_table(shared_azurite)
    table.upsert_entity({"PartitionKey": "job", "RowKey": "1", "attempt": 1})
    stale = table.get_entity("job", "1")
    table.update_entity({"PartitionKey": "job", "RowKey": "1", "attempt": 2})

    with pytest.raises(ResourceModifiedError) as raised:
        table.update_entity(
            {"PartitionKey": "job", "RowKey": "1", "attempt": 3},
            mode=UpdateMode.REPLACE,
            etag=stale.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )

    assert raised.value.status_code == 412
    assert table.get_entity("job", "1")["attempt"] == 2


def test_update_with_the_current_etag_succeeds(shared_azurite: Azurite) -> None:
    table = _new_table(shared_azurite)
    table.upsert_entity({"PartitionKey": "job", "RowKey": "1", "attempt": 1})
    current = table.get_entity("job", "1")

    table.update_entity(
        {"PartitionKey": "job", "RowKey": "1", "attempt": 2},
        etag=current.metadata["etag"],
        match_condition=MatchConditions.IfNotModified,
    )

    assert table.get_entity("job", "1")["attempt"] == 2


def test_restart_keeps_port_and_data(own_azurite: Azurite) -> None:
    table = _new_table(own_azurite)
    table.upsert_entity({"PartitionKey": "job", "RowKey": "1", "state": "running"})
    port = own_azurite.port

    own_azurite.restart()

    assert own_azurite.port == port
    assert table.get_entity("job", "1")["state"] == "running"


def test_paused_azurite_times_out_and_recovers_on_resume(own_azurite: Azurite) -> None:
    table = _new_table(
        own_azurite,
        connection_timeout=PAUSED_CALL_TIMEOUT_S,
        read_timeout=PAUSED_CALL_TIMEOUT_S,
        retry_total=NO_RETRIES,
    )
    entity = {"PartitionKey": "job", "RowKey": "1", "state": "paused"}

    own_azurite.pause()
    with pytest.raises(ServiceResponseError):
        table.upsert_entity(entity)
    own_azurite.resume()

    table.upsert_entity(entity)
    assert table.get_entity("job", "1")["state"] == "paused"


def test_stop_while_paused_still_stops(tmp_path: Path) -> None:
    azurite = Azurite(tmp_path).start()
    azurite.pause()

    azurite.stop()

    assert not azurite.running
