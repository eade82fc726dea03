"""The Defender emulator as a thread-safe WSGI application.

An ``/api/`` call goes through, in order: added latency; the bearer token
(401, or 403 for a foreign audience or a missing role); forced 429s, then the
sliding-window limits of its API group per (tenant, app); injected faults; the
handler. Calls refused by authentication or throttled are not counted by the
limits. With ``error_after_commit`` a faulted call runs its handler first.

One lock guards the tenant, the limits, the faults and the call log. The
emulated tenant is shared by every tenant ID that presents a valid token;
tenant IDs only separate rate-limit budgets.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from random import Random
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from emulator.auth import Caller, authenticate
from emulator.config import EmulatorConfig, Faults, patch_config
from emulator.context import ApiContext
from emulator.control import CONTROL_RULES, handle_control
from emulator.deletion import batch_delete, delete_one, requested_ids
from emulator.faults import (
    ERROR_STATUSES,
    Fault,
    drop_connection,
    fault_error,
    roll_fault,
)
from emulator.limits import SlidingWindowLimiter, parse_limits, retry_after_header
from emulator.listing import list_indicators
from emulator.responses import ApiError, Reply, to_response
from emulator.seed import load_seed
from emulator.store import IndicatorStore
from emulator.submission import import_indicators, submit
from emulator.timestamps import format_timestamp, utc_from_epoch

__all__ = ["API_GROUPS", "MAX_CALL_LOG", "DefenderEmulator"]

logger = logging.getLogger(__name__)

# Which rate-limit budget each API draws on.
API_GROUPS: Mapping[str, str] = {
    "batch_delete": "batch_delete",
    "list": "list",
    "delete": "list",
    "submit": "list",
    "import": "import",
}
MAX_CALL_LOG = 100_000

_LIMIT_FIELDS = {
    "batch_delete": "batch_delete_limits",
    "list": "list_limits",
    "import": "import_limits",
}
_HANDLERS: Mapping[str, Callable[[ApiContext], Reply]] = {
    "list": list_indicators,
    "submit": submit,
    "import": import_indicators,
    "batch_delete": batch_delete,
}
_COMMITTED_STATUS = 500
_TOO_MANY_REQUESTS = 429
_METHOD_NOT_ALLOWED = 405
_RESOURCE_NOT_FOUND = 404

_API_RULES = (
    Rule("/api/indicators", methods=["GET"], endpoint="list"),
    Rule("/api/indicators", methods=["POST"], endpoint="submit"),
    Rule("/api/indicators/import", methods=["POST"], endpoint="import"),
    Rule("/api/indicators/BatchDelete", methods=["POST"], endpoint="batch_delete"),
    Rule("/api/indicators/<indicator_id>", methods=["DELETE"], endpoint="delete"),
)
# One map for every emulator: rules bind to a single map, and matching is
# read-only, so sharing it across threads is safe.
_URLS = Map([*_API_RULES, *CONTROL_RULES], strict_slashes=False)

# None stands for a dropped connection.
_Outcome = Reply | ApiError | None


class DefenderEmulator:
    """A WSGI application that behaves like Defender's indicator API."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._lock = threading.RLock()
        self._config = config
        self._store = IndicatorStore()
        self._random = Random(config.faults.seed)
        self._limiters = {
            group: SlidingWindowLimiter(parse_limits(getattr(config, name)))
            for group, name in _LIMIT_FIELDS.items()
        }
        self._calls: deque[dict[str, Any]] = deque(maxlen=MAX_CALL_LOG)

    @property
    def config(self) -> EmulatorConfig:
        """The current settings (frozen; change them with the methods below)."""
        return self._config

    def load(self, indicators: Iterable[Mapping[str, Any]]) -> None:
        """Replace the tenant's indicators; raises ValueError for a bad row."""
        with self._lock:
            self._store.load(indicators)

    def restore_seed(self, now: datetime | None = None) -> int:
        """Load the seed shifted to `now` (the clock's time); return its size."""
        rows = load_seed(now or utc_from_epoch(self._config.clock()))
        self.load(rows)
        return len(rows)

    def indicators(self) -> list[dict[str, Any]]:
        """Copies of the active indicators, in ID order."""
        with self._lock:
            self._store.expire(self._config.clock())
            rows = self._store.active()
        return [_copy(row) for row in rows]

    def calls(self) -> list[dict[str, Any]]:
        """The ``/api/`` call log, oldest first."""
        with self._lock:
            return [dict(call) for call in self._calls]

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def reset_limits(self) -> None:
        """Forget every call the rate limits have counted."""
        with self._lock:
            for limiter in self._limiters.values():
                limiter.reset()

    def reset(self, config: EmulatorConfig | None = None) -> None:
        """Start over: an empty tenant, no counted calls, an empty call log,
        the random generator reseeded, and `config` if one is given."""
        with self._lock:
            self._install(config or self._config)
            self._store.load([])
            self.reset_limits()
            self._calls.clear()
            self._random.seed(self._config.faults.seed)

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Replace config fields by name; raises ValueError or TypeError."""
        with self._lock:
            return self._install(replace(self._config, **changes))

    def set_faults(self, **changes: Any) -> Faults:
        """Replace fault fields by name; a given `seed` reseeds the generator."""
        with self._lock:
            faults = replace(self._config.faults, **changes)
            self._install(replace(self._config, faults=faults))
            if "seed" in changes:
                self._random.seed(faults.seed)
            return faults

    def patch_config(self, patch: Mapping[str, Any]) -> EmulatorConfig:
        """Apply a ``PATCH /_emulator/config`` body; raises ValueError."""
        with self._lock:
            config = self._install(patch_config(self._config, patch))
            if "seed" in (patch.get("faults") or {}):
                self._random.seed(config.faults.seed)
            return config

    def _install(self, config: EmulatorConfig) -> EmulatorConfig:
        for group, name in _LIMIT_FIELDS.items():
            if getattr(config, name) != getattr(self._config, name):
                limits = parse_limits(getattr(config, name))
                self._limiters[group] = SlidingWindowLimiter(limits)
        self._config = config
        return config

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = Request(environ)
        try:
            endpoint, args = _URLS.bind_to_environ(environ).match()
        except HTTPException as exc:
            response = _routing_error(request, exc)
        else:
            if endpoint in API_GROUPS:
                response = self._api_call(request, endpoint, args)
            else:
                response = handle_control(self, endpoint, request)
        return response(environ, start_response)

    def _api_call(
        self, request: Request, api: str, args: Mapping[str, Any]
    ) -> Response:
        started = time.perf_counter()
        # Read the body before taking the lock, so a slow client blocks nobody.
        call = self._new_call(request, api)
        latency = self._config.faults.latency_s
        if latency:
            time.sleep(latency)
        # Defender counts a call when it arrives, after the network's delay.
        call["time"] = format_timestamp(utc_from_epoch(self._config.clock()))

        outcome = self._outcome(request, api, args, call)
        if outcome is None:
            self._finish(call, None, started)
            drop_connection(request.environ)
        response = to_response(outcome)
        self._finish(call, response.status_code, started)
        return response

    def _outcome(
        self, request: Request, api: str, args: Mapping[str, Any], call: dict[str, Any]
    ) -> _Outcome:
        config = self._config
        try:
            caller = authenticate(
                request.headers.get("Authorization"),
                config.signer,
                config.accepted_audiences,
            )
        except ApiError as exc:
            return exc
        call.update(tenant=caller.tenant_id, app=caller.app_id)

        with self._lock:
            try:
                self._admit(caller, api, call)
            except ApiError as exc:
                return exc
            return self._faulted_handling(request, api, args, call, caller)

    def _admit(self, caller: Caller, api: str, call: dict[str, Any]) -> None:
        faults = self._config.faults
        if faults.force_429:
            self.set_faults(force_429=faults.force_429 - 1)
            call["fault"] = "force_429"
            raise _throttled(str(faults.retry_after_s))

        limiter = self._limiters[API_GROUPS[api]]
        wait = limiter.try_acquire(
            (caller.tenant_id, caller.app_id), self._config.clock()
        )
        if wait is not None:
            raise _throttled(retry_after_header(wait))

    def _faulted_handling(
        self,
        request: Request,
        api: str,
        args: Mapping[str, Any],
        call: dict[str, Any],
        caller: Caller,
    ) -> _Outcome:
        faults = self._config.faults
        fault = roll_fault(faults, self._random)
        if fault is Fault.NONE:
            return self._handle(request, api, args, caller)

        call["fault"] = fault.value
        if faults.error_after_commit:
            # The work is done and its answer lost, as when a server fails late.
            self._handle(request, api, args, caller)
            return None if fault is Fault.DROP else fault_error(_COMMITTED_STATUS)
        if fault is Fault.DROP:
            return None
        return fault_error(self._random.choice(ERROR_STATUSES))

    def _handle(
        self, request: Request, api: str, args: Mapping[str, Any], caller: Caller
    ) -> Reply | ApiError:
        now = self._config.clock()
        self._store.expire(now)
        base_url = request.host_url.rstrip("/")
        ctx = ApiContext(request, caller, self._config, self._store, now, base_url)
        try:
            if api == "delete":
                return delete_one(ctx, str(args["indicator_id"]))
            return _HANDLERS[api](ctx)
        except ApiError as exc:
            return exc

    def _new_call(self, request: Request, api: str) -> dict[str, Any]:
        ids = _batch_ids(request.get_data()) if api == "batch_delete" else None
        return {
            "time": format_timestamp(utc_from_epoch(self._config.clock())),
            "method": request.method,
            "path": request.path,
            "status": None,
            "api": api,
            "tenant": None,
            "app": None,
            "ids": len(ids) if ids is not None else None,
            "indicatorIds": ids,
            "fault": None,
        }

    def _finish(self, call: dict[str, Any], status: int | None, started: float) -> None:
        call["status"] = status
        with self._lock:
            self._calls.append(call)
        elapsed_ms = (time.perf_counter() - started) * 1000
        shown = "dropped" if status is None else status
        logger.info(
            "%s %s -> %s in %.1f ms", call["method"], call["path"], shown, elapsed_ms
        )


def _batch_ids(body: bytes) -> list[str] | None:
    """The IDs a BatchDelete body asked for, as strings, for the call log."""
    try:
        ids = requested_ids(json.loads(body))
    except ValueError:
        return None
    return None if ids is None else [str(i) for i in ids]


def _throttled(retry_after: str) -> ApiError:
    return ApiError(
        _TOO_MANY_REQUESTS,
        "TooManyRequests",
        f"rate limit exceeded; retry after {retry_after} s",
        headers={"Retry-After": retry_after},
    )


def _routing_error(request: Request, exc: HTTPException) -> Response:
    if isinstance(exc, MethodNotAllowed):
        message = f"{request.method} is not allowed on {request.path}"
        return to_response(ApiError(_METHOD_NOT_ALLOWED, "BadRequest", message))
    if isinstance(exc, NotFound):
        message = f"no resource at {request.path}"
        return to_response(ApiError(_RESOURCE_NOT_FOUND, "ResourceNotFound", message))
    return exc.get_response(request.environ)


def _copy(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: list(v) if isinstance(v, list) else v for key, v in row.items()}
