"""The one local stack every scenario runs on, and the levers faults pull.

A `Lab` starts a `LocalStack` with fresh Azurite storage, the scaled limits
on both the app and the emulator, and the timer functions switched off (so
only worker processes and HTTP polls do the work). Between scenarios it puts
the emulator, the identity stand-ins, the app settings and the app's shared
budget back as they were; jobs stay in the state table, each scenario
reading only its own.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.ours import stack_options
from bench.params import FULL as BENCH_FULL
from bench.params import BenchParams
from bench.scenarios import Scenario as BenchScenario
from bench.scenarios import Tenant, prepare_tenant
from emulator import DefenderEmulator, Faults
from localdev.azurite import Azurite
from localdev.identity import IdentityStandIns
from localdev.stack import (
    DEFENDER_ROLE,
    LOCAL_CLIENT_ID,
    LOCAL_TENANT_ID,
    SECRET_NAME,
    LocalStack,
)
from localdev.tokens import DEFAULT_LIFETIME_S
from shared.settings import Settings
from shared.storage import open_state_table

from .params import FaultParams
from .state import StateTable
from .workers import WorkerPool

__all__ = ["Lab", "bench_params", "bench_scenario"]

WATCH_POLL_S = 0.02
# No scenario asks for more than a full tenant (Defender's cap) at once.
MAX_REQUEST_IDS = 15_000


def bench_params(params: FaultParams) -> BenchParams:
    """The benchmark's parameters carrying this suite's limits and caps, for
    the parts of `bench` this suite drives the app with."""
    return replace(
        BENCH_FULL,
        mode=f"faults-{params.mode}",
        batch_delete_limits=params.batch_delete_limits,
        list_limits=params.list_limits,
        latency_s=params.latency_s,
        linger_s=params.linger_s,
        ours_cap_s=params.cap_s,
    )


def bench_scenario(name: str, requests: tuple[tuple[int, ...], ...]) -> BenchScenario:
    """A benchmark scenario for `bench.ours.run_ours`: these requests, all
    sent at once, with no worker processes of its own (the suite runs them)."""
    return BenchScenario(
        key=name,
        label=name,
        workers=0,
        requests=requests,
        gone=frozenset(),
        arrival_s=0.0,
        ideal_s=0.0,
        ideal_calls=0,
    )


class Lab:
    """The running stack and the state of the scenario on it."""

    def __init__(self, params: FaultParams, workdir: Path) -> None:
        self.params = params
        self.bench = bench_params(params)
        largest = bench_scenario("largest", ((0,) * MAX_REQUEST_IDS,))
        options = stack_options(self.bench, largest, workdir / "stack")
        # One stack serves requests of one and of many jobs: the wait before
        # a POST answers 202 is set per scenario (see `app_settings`).
        options.settings.pop("SYNC_WAIT_SECONDS", None)
        self.stack = LocalStack(options)
        self.workers = WorkerPool(workdir / "workers", params.worker_s)
        self._state: StateTable | None = None

    # -- lifetime ------------------------------------------------------------

    def start(self) -> Lab:
        self.stack.start()
        table = open_state_table(Settings.from_environ(os.environ))
        self._state = StateTable(table, LOCAL_TENANT_ID.lower())
        return self

    def stop(self) -> None:
        """Stop every worker, then the stack; safe to call more than once."""
        self.workers.close()
        if self._state is not None:
            self._state.close()
            self._state = None
        self.stack.stop()

    # -- the parts -----------------------------------------------------------

    @property
    def emulator(self) -> DefenderEmulator:
        assert self.stack.emulator is not None
        return self.stack.emulator.emulator

    @property
    def identity(self) -> IdentityStandIns:
        assert self.stack.identity is not None
        return self.stack.identity

    @property
    def azurite(self) -> Azurite:
        assert self.stack.azurite is not None
        return self.stack.azurite

    @property
    def state(self) -> StateTable:
        """The app's state table, for what its API does not offer."""
        assert self._state is not None
        return self._state

    @property
    def base_url(self) -> str:
        assert self.stack.host is not None
        return self.stack.host.base_url

    @property
    def function_key(self) -> str:
        assert self.stack.host is not None
        return self.stack.host.function_key

    # -- between scenarios ---------------------------------------------------

    def reset(self, rows: list[dict[str, Any]]) -> Tenant:
        """A well-behaved world holding `rows` as the tenant, and a fresh
        shared budget in the app, as the emulator forgets its counted calls."""
        self.state.forget_budget()
        self.emulator.configure(
            batch_delete_limits=self.params.batch_delete_limits,
            list_limits=self.params.list_limits,
            partial_failure="none",
            exposure={},
            faults=Faults(seed=self.params.fault_seed),
            clock=time.time,
        )
        self.set_token_lifetime(DEFAULT_LIFETIME_S)
        self.identity.set_secret(SECRET_NAME, self.stack.client_secret)
        self.identity.set_vault_available(True)
        self.identity.entra.set_available(True)
        return prepare_tenant(self.emulator, rows, self.bench)

    def set_token_lifetime(self, seconds: int) -> None:
        """Register the app again, its tokens living `seconds`."""
        self.identity.register_app(
            LOCAL_TENANT_ID,
            LOCAL_CLIENT_ID,
            [self.stack.client_secret],
            [DEFENDER_ROLE],
            token_lifetime_s=seconds,
        )

    def shift_clock(self, seconds: float) -> None:
        """Move the emulator's clock (expiry and rate limits) ahead."""
        self.emulator.configure(clock=lambda: time.time() + seconds)

    @contextlib.contextmanager
    def app_settings(self, overrides: Mapping[str, str]) -> Iterator[None]:
        """App settings changed for the functions host (and for the workers
        started meanwhile), restored afterwards."""
        saved = {name: os.environ.get(name) for name in overrides}
        os.environ.update(overrides)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    # -- watching and steering the run -----------------------------------------

    def calls(self, api: str | None = None) -> list[dict[str, Any]]:
        calls = self.emulator.calls()
        return calls if api is None else [c for c in calls if c.get("api") == api]

    def wait_for_calls(
        self, api: str, count: int, stop: threading.Event, timeout_s: float
    ) -> bool:
        """Wait until the emulator logged `count` calls of `api`; False when
        the run ended or time ran out first."""
        return self.wait_until(lambda: len(self.calls(api)) >= count, stop, timeout_s)

    def wait_until(
        self, condition: Callable[[], bool], stop: threading.Event, timeout_s: float
    ) -> bool:
        """Wait until `condition()`; False when the run ended or time ran out."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if stop.is_set() or time.monotonic() > deadline:
                return False
            time.sleep(WATCH_POLL_S)
        return True
