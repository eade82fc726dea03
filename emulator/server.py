"""Run the emulator on a loopback port in a background thread."""

from __future__ import annotations

from types import TracebackType
from typing import NamedTuple

from emulator.app import DefenderEmulator
from emulator.config import EmulatorConfig
from localdev.servers import RunningServer, serve
from localdev.tokens import TokenSigner

__all__ = ["RunningEmulator", "start_emulator"]


class RunningEmulator(NamedTuple):
    """A served emulator; unpacks as ``server, emulator`` like a tuple."""

    server: RunningServer
    emulator: DefenderEmulator

    @property
    def url(self) -> str:
        """Base address, such as ``http://127.0.0.1:53127`` (no trailing slash)."""
        return self.server.url

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_emulator(
    config: EmulatorConfig | None = None, *, port: int = 0, seed: bool = True
) -> RunningEmulator:
    """Serve a new emulator on 127.0.0.1 (port 0 picks a free one).

    Without `config`, tokens are checked with a fresh random `TokenSigner`,
    reachable as ``running.emulator.config.signer``. With `seed`, the tenant
    starts with the 15,000 seed indicators shifted to the config's clock.
    """
    emulator = DefenderEmulator(config or EmulatorConfig(signer=TokenSigner()))
    if seed:
        emulator.restore_seed()
    return RunningEmulator(serve(emulator, port=port), emulator)
