"""Run Azurite's table service as a child process, for local runs and tests.

Azurite comes from npm, pinned in the repository's package.json; `npm ci` in
the repository root installs it under node_modules.

    with Azurite(Path(".localdev/azurite")) as azurite:
        service = TableServiceClient.from_connection_string(
            azurite.connection_string
        )

`pause()` and `resume()` freeze and thaw the process (SIGSTOP, SIGCONT): its
port still accepts connections but nothing answers, which is how storage
that is unavailable for a while looks to a client. `restart()` keeps the port
and the data.

Exceptions::

    AzuriteError    not installed, did not start in time, or not running
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from localdev.servers import LOOPBACK

__all__ = [
    "ACCOUNT_KEY",
    "ACCOUNT_NAME",
    "INSTALL_HINT",
    "Azurite",
    "AzuriteError",
]

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
AZURITE_TABLE_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite-table"
INSTALL_HINT = "run `npm ci` in the repository root to install Azurite"

# Azurite's fixed development account, the same on every machine (public).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
    "K1SZFPTOtr/KBHBeksoGMGw=="
)

START_TIMEOUT_S = 30.0
STOP_GRACE_S = 5.0
POLL_INTERVAL_S = 0.05
CONNECT_TIMEOUT_S = 0.5
DEBUG_LOG_NAME = "azurite-debug.log"
OUTPUT_LOG_NAME = "azurite-output.log"
OUTPUT_TAIL_CHARS = 2000


class AzuriteError(Exception):
    """Azurite is not installed, did not start, or is not running."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False


class Azurite:
    """Azurite's table service on 127.0.0.1, keeping its data in `data_dir`."""

    def __init__(
        self, data_dir: Path, *, port: int = 0, binary: Path = AZURITE_TABLE_BIN
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._paused = False

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Azurite(port={self.port}, data_dir={str(self.data_dir)!r}, {state})"

    @property
    def running(self) -> bool:
        """True while the child process is alive (paused counts as alive)."""
        return self._process is not None and self._process.poll() is None

    @property
    def table_endpoint(self) -> str:
        """The table service URL for the development account."""
        return f"http://{LOOPBACK}:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        """A storage connection string for the development account."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};"
            f"AccountKey={ACCOUNT_KEY};TableEndpoint={self.table_endpoint};"
        )

    def start(self) -> Azurite:
        """Start Azurite and wait until it accepts connections.

        Raises AzuriteError if it is not installed, exits, or is not
        listening within START_TIMEOUT_S.
        """
        if self.running:
            return self
        if not self.binary.exists():
            raise AzuriteError(f"{self.binary} not found; {INSTALL_HINT}")

        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = _free_port()
        elif _accepts_connections(self.port):
            raise AzuriteError(f"port {self.port} is already in use")
        self._output = (self.data_dir / OUTPUT_LOG_NAME).open("ab")
        self._process = subprocess.Popen(
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_until_listening()
        logger.info("Azurite table service on port %d", self.port)
        return self

    def stop(self) -> None:
        """Interrupt Azurite's process group; kill it after STOP_GRACE_S."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            if self._paused:
                self._signal(signal.SIGCONT)
            # Azurite saves its database on SIGINT only; SIGTERM loses the
            # writes of the last few seconds.
            self._signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                logger.warning("Azurite did not stop in %.0fs; killing", STOP_GRACE_S)
                self._signal(signal.SIGKILL)
                process.wait()
        self._process = None
        self._paused = False
        if self._output is not None:
            self._output.close()
            self._output = None

    def restart(self) -> Azurite:
        """Stop and start again on the same port with the same data."""
        self.stop()
        return self.start()

    def pause(self) -> None:
        """Freeze Azurite (SIGSTOP): connections open but nothing answers."""
        self._require_running()
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Thaw a paused Azurite (SIGCONT)."""
        self._require_running()
        self._signal(signal.SIGCONT)
        self._paused = False

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _command(self) -> list[str]:
        return [
            str(self.binary),
            "--tableHost",
            LOOPBACK,
            "--tablePort",
            str(self.port),
            "--location",
            str(self.data_dir),
            "--debug",
            str(self.data_dir / DEBUG_LOG_NAME),
            "--silent",
            "--disableTelemetry",
        ]

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _accepts_connections(self.port):
            if not self.running:
                self.stop()
                raise AzuriteError(f"Azurite exited at start: {self._output_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise AzuriteError(
                    f"Azurite not listening on port {self.port} after "
                    f"{START_TIMEOUT_S:.0f}s: {self._output_tail()}"
                )
            time.sleep(POLL_INTERVAL_S)

    def _output_tail(self) -> str:
        try:
            text = (self.data_dir / OUTPUT_LOG_NAME).read_text(errors="replace")
        except OSError:
            return "(no output)"
        return text[-OUTPUT_TAIL_CHARS:].strip() or "(no output)"

    def _signal(self, signum: signal.Signals) -> None:
        if self._process is None:
            return
        # It may have exited between the caller's check and the signal.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signum)

    def _require_running(self) -> None:
        if not self.running:
            raise AzuriteError("Azurite is not running")
