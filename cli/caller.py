"""Who runs the command line, as the audit record names them."""

from __future__ import annotations

import getpass
import socket

__all__ = ["UNKNOWN_OPERATOR", "caller", "operator_name"]

UNKNOWN_OPERATOR = "unknown"


def operator_name() -> str:
    """The login name of whoever runs this process."""
    try:
        return getpass.getuser()
    # Containers may run as a user with no name: no LOGNAME, no passwd entry.
    except (OSError, KeyError):
        return UNKNOWN_OPERATOR


def caller() -> dict[str, str]:
    """The caller entry of a job's audit record: operator and host."""
    return {"operator": operator_name(), "host": socket.gethostname()}
