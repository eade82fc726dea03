"""The Table Storage client for job and pacing state."""

from __future__ import annotations

import logging
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient
from azure.identity import DefaultAzureCredential

from .errors import StorageError
from .settings import Settings

__all__ = ["STATE_TABLE", "open_state_table"]

logger = logging.getLogger(__name__)

STATE_TABLE = "iocbatchdelete"
# Bounded so that an unavailable storage account answers callers within
# seconds instead of after azure-core's default ten retries.
_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 3,
    "retry_backoff_factor": 0.4,
    "retry_backoff_max": 4,
    "connection_timeout": 5,
    "read_timeout": 15,
}


def open_state_table(settings: Settings) -> TableClient:
    """The state table, created if missing; raises StorageError."""
    if settings.storage_connection_string:
        service = TableServiceClient.from_connection_string(
            settings.storage_connection_string, **_CLIENT_OPTIONS
        )
    else:
        assert settings.table_service_uri is not None
        service = TableServiceClient(
            settings.table_service_uri,
            credential=DefaultAzureCredential(),
            **_CLIENT_OPTIONS,
        )
    try:
        service.create_table(STATE_TABLE)
        logger.info("created table %s", STATE_TABLE)
    except ResourceExistsError:
        pass
    except AzureError as exc:
        raise StorageError("could not open the state table") from exc
    return service.get_table_client(STATE_TABLE)
