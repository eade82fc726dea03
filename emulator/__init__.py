"""A local stand-in for Defender for Endpoint's custom-indicator API.

Run it with ``python -m emulator`` or, from Python::

    running = start_emulator(EmulatorConfig(signer=signer))
    ...  # call running.url + "/api/indicators" with a token from `signer`
    running.stop()

`start_emulator` returns a `RunningEmulator`: a named tuple of the
``server`` (``localdev.servers.RunningServer``) and the ``emulator``
(`DefenderEmulator`, the WSGI application), with ``.url`` and ``.stop()``
and usable as a context manager; ``server, emulator = start_emulator()``
also works. The emulator keeps one tenant's indicators in memory, checks
bearer tokens and rate limits as Defender does, and can inject latency,
server errors, dropped connections and forced 429s. ``/_emulator/`` control
endpoints (see `emulator.control`) inspect and steer it over HTTP.
"""

from __future__ import annotations

from emulator.app import DefenderEmulator
from emulator.config import DEFAULT_AUDIENCES, EmulatorConfig, Faults
from emulator.limits import RateLimit, parse_limits
from emulator.odata import FilterError, compile_filter
from emulator.seed import SEED_PATH, SNAPSHOT, load_seed
from emulator.server import RunningEmulator, start_emulator

__all__ = [
    "DEFAULT_AUDIENCES",
    "SEED_PATH",
    "SNAPSHOT",
    "DefenderEmulator",
    "EmulatorConfig",
    "Faults",
    "FilterError",
    "RateLimit",
    "RunningEmulator",
    "compile_filter",
    "load_seed",
    "parse_limits",
    "start_emulator",
]
