"""The ``/_emulator/`` endpoints: a loopback tool to inspect and steer the
emulator. They need no token and are never faulted, throttled or logged as
calls. Bodies they read must be JSON with ``Content-Type: application/json``.

- ``GET /_emulator/indicators``: the active tenant, List-shaped
  (``{"@odata.context": ..., "value": [...]}``).
- ``POST /_emulator/indicators``: replace the tenant with ``{"value": [...]}``.
- ``POST /_emulator/seed``: reload the seed, shifted to the emulator's clock.
- ``GET /_emulator/calls`` / ``DELETE /_emulator/calls``: read or clear the
  call log (``{"value": [...]}``).
- ``GET /_emulator/config`` / ``PATCH /_emulator/config``: read or change the
  settings and faults; unknown keys and bad values answer 400.
- ``DELETE /_emulator/limits``: forget the calls the rate limits counted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from emulator.config import config_to_json
from emulator.responses import ApiError, Reply, read_json_object, to_response

if TYPE_CHECKING:
    from emulator.app import DefenderEmulator

__all__ = ["CONTROL_RULES", "handle_control"]

_PREFIX = "control:"
_OK = 200
_NO_CONTENT = 204
_BAD_REQUEST = 400

CONTROL_RULES = (
    Rule("/_emulator/indicators", methods=["GET"], endpoint=f"{_PREFIX}indicators"),
    Rule("/_emulator/indicators", methods=["POST"], endpoint=f"{_PREFIX}load"),
    Rule("/_emulator/seed", methods=["POST"], endpoint=f"{_PREFIX}seed"),
    Rule("/_emulator/calls", methods=["GET"], endpoint=f"{_PREFIX}calls"),
    Rule("/_emulator/calls", methods=["DELETE"], endpoint=f"{_PREFIX}clear_calls"),
    Rule("/_emulator/config", methods=["GET"], endpoint=f"{_PREFIX}config"),
    Rule("/_emulator/config", methods=["PATCH"], endpoint=f"{_PREFIX}patch_config"),
    Rule("/_emulator/limits", methods=["DELETE"], endpoint=f"{_PREFIX}reset_limits"),
)


def handle_control(
    emulator: DefenderEmulator, endpoint: str, request: Request
) -> Response:
    """Answer a control endpoint named by its routing `endpoint`."""
    handler = _HANDLERS[endpoint.removeprefix(_PREFIX)]
    try:
        return to_response(handler(emulator, request))
    except ApiError as exc:
        return to_response(exc)


def _indicators(emulator: DefenderEmulator, request: Request) -> Reply:
    context = f"{request.host_url.rstrip('/')}/api/$metadata#Indicators"
    return Reply(_OK, {"@odata.context": context, "value": emulator.indicators()})


def _load(emulator: DefenderEmulator, request: Request) -> Reply:
    rows = read_json_object(request).get("value")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ApiError(_BAD_REQUEST, "InvalidRequestBody", "value must list indicators")
    try:
        emulator.load(rows)
    except ValueError as exc:
        raise ApiError(_BAD_REQUEST, "InvalidInput", str(exc)) from exc
    return Reply(_OK, {"count": len(rows)})


def _seed(emulator: DefenderEmulator, request: Request) -> Reply:
    return Reply(_OK, {"count": emulator.restore_seed()})


def _calls(emulator: DefenderEmulator, request: Request) -> Reply:
    return Reply(_OK, {"value": emulator.calls()})


def _clear_calls(emulator: DefenderEmulator, request: Request) -> Reply:
    emulator.clear_calls()
    return Reply(_NO_CONTENT)


def _config(emulator: DefenderEmulator, request: Request) -> Reply:
    return Reply(_OK, config_to_json(emulator.config))


def _patch_config(emulator: DefenderEmulator, request: Request) -> Reply:
    try:
        config = emulator.patch_config(read_json_object(request))
    except ValueError as exc:
        raise ApiError(_BAD_REQUEST, "BadRequest", str(exc)) from exc
    return Reply(_OK, config_to_json(config))


def _reset_limits(emulator: DefenderEmulator, request: Request) -> Reply:
    emulator.reset_limits()
    return Reply(_NO_CONTENT)


_HANDLERS: Mapping[str, Callable[[DefenderEmulator, Request], Reply]] = {
    "indicators": _indicators,
    "load": _load,
    "seed": _seed,
    "calls": _calls,
    "clear_calls": _clear_calls,
    "config": _config,
    "patch_config": _patch_config,
    "reset_limits": _reset_limits,
}
