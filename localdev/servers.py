"""Run a WSGI application on a loopback port in a background thread.

Every local service (the Defender emulator, the identity stand-ins, the
functions host) is a WSGI application served by Werkzeug's threaded server.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

__all__ = ["RunningServer", "serve"]

LOOPBACK = "127.0.0.1"

WSGIApp = Callable[..., Any]


class RunningServer:
    """A server running in a daemon thread; `url` is its base address."""

    def __init__(self, server: BaseWSGIServer, scheme: str) -> None:
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name=f"wsgi-{server.port}", daemon=True
        )
        self.host = server.host
        self.port = server.port
        self.url = f"{scheme}://{self.host}:{self.port}"

    def start(self) -> RunningServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(
    app: WSGIApp,
    *,
    host: str = LOOPBACK,
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
) -> RunningServer:
    """Serve `app` on `host:port` (0 picks a free port) and return at once."""
    # Werkzeug's request log goes to the "werkzeug" logger at INFO; the local
    # services log their own lines, so keep that one quiet unless debugging.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(host, port, app, threaded=True, ssl_context=ssl_context)
    scheme = "https" if ssl_context is not None else "http"
    return RunningServer(server, scheme).start()
