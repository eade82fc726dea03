"""The whole local stack: Azurite, the Defender emulator, the identity
stand-ins and the functions host, wired as the app is wired in Azure.

``python -m localdev.stack`` (``make serve``) runs it in the foreground until
interrupted and prints ``FUNCTION_BASE_URL=``, ``FUNCTION_KEY=`` and
``EMULATOR_URL=`` lines once everything is ready. Azurite keeps its data in
``.localdev/azurite`` so a restart keeps job and budget state.

The function app reads its settings from the process environment, as it does
in Azure, so `LocalStack.start` puts them into ``os.environ`` and `stop`
restores what was there.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import shutil
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from emulator import EmulatorConfig, RunningEmulator, start_emulator
from localdev.azurite import Azurite
from localdev.host import RunningHost, start_host
from localdev.identity import IdentityStandIns, start_identity
from localdev.tokens import TokenSigner

__all__ = [
    "LOCAL_CLIENT_ID",
    "LOCAL_TENANT_ID",
    "REPO_ROOT",
    "SECRET_NAME",
    "LocalStack",
    "StackOptions",
]

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = REPO_ROOT / ".localdev"
LOCAL_TENANT_ID = "8f3e6c1a-5b2d-4e7f-9a1c-0d2e3f4a5b6c"
# The app ID that the seed tenant's `ioc-batch-delete` indicators carry, so
# that the local app owns the indicators its namesake created.
LOCAL_CLIENT_ID = "b5a47963-b7f1-5072-bb8f-abe981bf12f4"
SECRET_NAME = "defender-client-secret"
DEFENDER_ROLE = "Ti.ReadWrite.All"
TIMER_SCHEDULE = "0 */1 * * * *"
CLEANUP_SCHEDULE = "0 0 3 * * *"
WORKER_THREADS = "32"


@dataclass
class StackOptions:
    """What to start and how; the defaults are the real service limits."""

    workdir: Path = DEFAULT_WORKDIR
    seed: bool = True
    keep_storage: bool = True
    batch_delete_limits: str = "30/60s,1500/3600s"
    list_limits: str = "100/60s,1500/3600s"
    start_host: bool = True
    host_port: int = 0
    function_key: str | None = None
    settings: dict[str, str] = field(default_factory=dict)


class LocalStack:
    """Starts and stops every local service; see the module docstring."""

    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.signer = TokenSigner()
        self.client_secret = secrets.token_urlsafe(24)
        self.settings: dict[str, str] = {}
        self.azurite: Azurite | None = None
        self.identity: IdentityStandIns | None = None
        self.emulator: RunningEmulator | None = None
        self.host: RunningHost | None = None
        self._saved_environ: dict[str, str | None] = {}

    @property
    def emulator_url(self) -> str:
        assert self.emulator is not None
        return self.emulator.url

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        workdir = self.options.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        storage = workdir / "azurite"
        if not self.options.keep_storage:
            shutil.rmtree(storage, ignore_errors=True)
        self.azurite = Azurite(storage)
        self.azurite.start()
        self.identity = start_identity(
            workdir / "identity", signer=self.signer, tenant_id=LOCAL_TENANT_ID
        )
        self.identity.register_app(
            LOCAL_TENANT_ID, LOCAL_CLIENT_ID, [self.client_secret], [DEFENDER_ROLE]
        )
        self.identity.set_secret(SECRET_NAME, self.client_secret)
        config = EmulatorConfig(
            signer=self.signer,
            batch_delete_limits=self.options.batch_delete_limits,
            list_limits=self.options.list_limits,
        )
        self.emulator = start_emulator(config, seed=self.options.seed)
        self.settings = self._app_settings()
        self._apply_environment()
        if self.options.start_host:
            self.host = start_host(
                REPO_ROOT,
                function_key=self.options.function_key or secrets.token_urlsafe(24),
                port=self.options.host_port,
                environ=self.settings,
            )
            # The API description, served beside the API as a user would
            # fetch it (see openapi.yaml).
            self.host.host.add_static(
                f"/{self.host.host.route_prefix}/openapi.yaml",
                REPO_ROOT / "openapi.yaml",
                mimetype="application/yaml",
            )

    def _app_settings(self) -> dict[str, str]:
        assert self.azurite and self.identity and self.emulator
        return {
            "DEFENDER_TENANT_ID": LOCAL_TENANT_ID,
            "DEFENDER_CLIENT_ID": LOCAL_CLIENT_ID,
            "DEFENDER_CLIENT_SECRET_NAME": SECRET_NAME,
            "DEFENDER_API_URL": self.emulator.url,
            "AzureWebJobsStorage": self.azurite.connection_string,
            "BATCH_DELETE_RATE_LIMITS": self.options.batch_delete_limits,
            "LIST_RATE_LIMITS": self.options.list_limits,
            "BATCH_DELETE_TIMER_SCHEDULE": TIMER_SCHEDULE,
            "CLEANUP_SCHEDULE": CLEANUP_SCHEDULE,
            # As the deployment template sets it (deploy/azuredeploy.json).
            "PYTHON_THREADPOOL_THREAD_COUNT": WORKER_THREADS,
            **self.identity.environment(),
            **self.options.settings,
        }

    def _apply_environment(self) -> None:
        for name, value in self.settings.items():
            self._saved_environ.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _restore_environment(self) -> None:
        for name, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environ.clear()

    def stop(self) -> None:
        for part in (self.host, self.emulator, self.identity, self.azurite):
            if part is not None:
                try:
                    part.stop()
                except Exception:  # a failed stop must not keep others running
                    logger.exception("could not stop %s", type(part).__name__)
        self.host = self.emulator = self.identity = self.azurite = None
        self._restore_environment()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=7071, help="functions host port")
    parser.add_argument("--key", help="function key (default: generated)")
    parser.add_argument(
        "--fresh", action="store_true", help="start with empty Azurite storage"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options = StackOptions(
        host_port=args.port, function_key=args.key, keep_storage=not args.fresh
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with LocalStack(options) as stack:
        assert stack.host is not None
        stack.host.host.start()
        print(f"FUNCTION_BASE_URL={stack.host.base_url}", flush=True)
        print(f"FUNCTION_KEY={stack.host.function_key}", flush=True)
        print(f"EMULATOR_URL={stack.emulator_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
        print("stopping", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
