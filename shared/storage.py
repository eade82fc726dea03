"""The Table Storage client for job and pacing state.

Two kinds of work use the table, and they can afford different waits. An
HTTP request has a caller waiting for its answer: its storage calls give up
within seconds, so an unavailable storage account is answered 503 while the
caller still listens. Background work (timer ticks, worker processes) has no
one waiting and rides out a slow storage account with longer timeouts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient
from azure.identity import DefaultAzureCredential

from .errors import StorageError
from .settings import Settings

__all__ = [
    "BACKGROUND",
    "REQUEST",
    "STATE_TABLE",
    "StoragePatience",
    "open_state_table",
]

logger = logging.getLogger(__name__)

STATE_TABLE = "iocbatchdelete"
# The longest the SDK sleeps between two attempts of one call.
_BACKOFF_MAX_S = 4.0


@dataclass(frozen=True)
class StoragePatience:
    """How long one storage call may take before it fails with StorageError.

    A call that gets no answer takes up to `retries + 1` read timeouts, plus
    the SDK's backoff between attempts.
    """

    connection_timeout_s: float
    read_timeout_s: float
    retries: int
    backoff_s: float

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for an azure-data-tables client."""
        return {
            "connection_timeout": self.connection_timeout_s,
            "read_timeout": self.read_timeout_s,
            "retry_total": self.retries,
            "retry_backoff_factor": self.backoff_s,
            "retry_backoff_max": _BACKOFF_MAX_S,
        }


# Both are far below azure-core's defaults (ten retries, five-minute reads).
# Background work waits out about a minute of silence before it gives up.
BACKGROUND = StoragePatience(
    connection_timeout_s=5, read_timeout_s=15, retries=3, backoff_s=0.4
)
# An HTTP request gives up within about ten seconds, so the caller hears 503
# long before its own timeout (and the Functions host's 230 s) runs out.
REQUEST = StoragePatience(
    connection_timeout_s=2, read_timeout_s=4, retries=1, backoff_s=0.4
)


def open_state_table(
    settings: Settings, patience: StoragePatience = BACKGROUND
) -> TableClient:
    """The state table, created if missing; raises StorageError."""
    options = patience.client_options()
    if settings.storage_connection_string:
        service = TableServiceClient.from_connection_string(
            settings.storage_connection_string, **options
        )
    else:
        assert settings.table_service_uri is not None
        service = TableServiceClient(
            settings.table_service_uri,
            credential=DefaultAzureCredential(),
            **options,
        )
    try:
        service.create_table(STATE_TABLE)
        logger.info("created table %s", STATE_TABLE)
    except ResourceExistsError:
        pass
    except AzureError as exc:
        raise StorageError("could not open the state table") from exc
    return service.get_table_client(STATE_TABLE)
