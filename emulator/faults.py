"""Trouble injected into ``/api/`` calls: server errors and dropped connections.

Forced 429s are handled with the rate limits, in the emulator itself.
"""

from __future__ import annotations

import enum
import socket
from collections.abc import Mapping
from contextlib import suppress
from random import Random
from typing import Any, NoReturn

from emulator.config import Faults
from emulator.responses import ApiError

__all__ = ["ERROR_STATUSES", "Fault", "drop_connection", "fault_error", "roll_fault"]

ERROR_STATUSES = (500, 503)
_UNAVAILABLE = 503


class Fault(enum.Enum):
    """What an injected fault does to one call."""

    NONE = "none"
    ERROR = "error"
    DROP = "drop"


def roll_fault(faults: Faults, rng: Random) -> Fault:
    """Draw the fault for one call; a drop is drawn before an error."""
    if faults.drop_rate and rng.random() < faults.drop_rate:
        return Fault.DROP
    if faults.error_rate and rng.random() < faults.error_rate:
        return Fault.ERROR
    return Fault.NONE


def fault_error(status: int) -> ApiError:
    """The injected server error for `status` (500 or 503)."""
    message = (
        "the service is temporarily unavailable"
        if status == _UNAVAILABLE
        else "an internal error occurred"
    )
    return ApiError(status, "InternalServerError", message)


def drop_connection(environ: Mapping[str, Any]) -> NoReturn:
    """Close the client's connection without an answer.

    Werkzeug's development server puts the connection in
    ``environ["werkzeug.socket"]`` and treats a ConnectionError raised by the
    application as a dropped connection, writing nothing. Under another WSGI
    server the socket is out of reach and the error becomes that server's 500.
    """
    connection = environ.get("werkzeug.socket")
    if isinstance(connection, socket.socket):
        with suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
    raise ConnectionAbortedError("emulator fault: connection dropped")
