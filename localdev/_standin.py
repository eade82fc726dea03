"""The WSGI plumbing shared by the identity stand-ins.

Each stand-in is a small Werkzeug application: a route table, one INFO line
per request (method, path without its query, status), an availability switch
for fault tests, and control endpoints under ``/_standin/`` that another local
process may call. Control endpoints take no credentials, so they answer only
callers on the loopback interface.
"""

from __future__ import annotations

import abc
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

__all__ = [
    "CONTROL_PREFIX",
    "ControlRequestError",
    "Handler",
    "JsonObject",
    "StandInApp",
    "json_response",
    "read_json",
    "string_list",
]

CONTROL_PREFIX = "/_standin"
LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "::1"})

JsonObject = dict[str, Any]
Handler = Callable[..., Response]


class ControlRequestError(Exception):
    """A control request's body does not say what to do."""


def json_response(
    body: JsonObject,
    status: int = HTTPStatus.OK,
    headers: dict[str, str] | None = None,
) -> Response:
    """Return `body` as a JSON response."""
    response = Response(status=status, headers=headers)
    response.set_data(json.dumps(body, separators=(",", ":")))
    response.mimetype = "application/json"
    return response


def read_json(request: Request) -> JsonObject:
    """Return the request's JSON object; raises ControlRequestError otherwise."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ControlRequestError("the body must be a JSON object")
    return body


def string_list(body: JsonObject, key: str) -> list[str]:
    """Return ``body[key]`` as a list of strings; raises ControlRequestError."""
    value = body.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ControlRequestError(f'"{key}" must be a list of strings')
    return value


class StandInApp(abc.ABC):
    """Base for a stand-in: routing, request log, availability, controls."""

    def __init__(self, name: str, log: logging.Logger) -> None:
        self.name = name
        self._log = log
        self._lock = threading.RLock()
        self._available = True
        self._routes = Map(self._service_rules() + self._all_control_rules())

    @property
    def available(self) -> bool:
        return self._available

    def set_available(self, available: bool) -> None:
        """Make the service answer normally, or with 503 to every call."""
        with self._lock:
            self._available = available
        self._log.info("%s available: %s", self.name, available)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = Request(environ)
        response = self._dispatch(request)
        self._log.info(
            "%s %s %s -> %d",
            self.name,
            request.method,
            request.path,
            response.status_code,
        )
        return response(environ, start_response)

    @abc.abstractmethod
    def _service_rules(self) -> list[Rule]:
        """The service's own routes; endpoints are handler callables."""

    def _control_rules(self) -> list[Rule]:
        """Extra control routes under CONTROL_PREFIX."""
        return []

    @abc.abstractmethod
    def _unavailable(self, request: Request) -> Response:
        """The service's answer while it is switched off."""

    def _not_found(self, request: Request) -> Response:
        return json_response(
            {"error": f"no route for {request.method} {request.path}"},
            HTTPStatus.NOT_FOUND,
        )

    def _all_control_rules(self) -> list[Rule]:
        common = [
            Rule(f"{CONTROL_PREFIX}/health", endpoint=self._on_health),
            Rule(
                f"{CONTROL_PREFIX}/availability",
                endpoint=self._on_availability,
                methods=["PUT", "POST"],
            ),
        ]
        return common + self._control_rules()

    def _dispatch(self, request: Request) -> Response:
        adapter = self._routes.bind_to_environ(request.environ)
        try:
            handler, args = adapter.match()
        except HTTPException:
            return self._not_found(request)

        if request.path.startswith(CONTROL_PREFIX + "/"):
            return self._control(request, handler, args)
        if not self._available:
            return self._unavailable(request)
        response: Response = handler(request, **args)
        return response

    def _control(
        self, request: Request, handler: Handler, args: Mapping[str, Any]
    ) -> Response:
        if request.remote_addr not in LOOPBACK_ADDRESSES:
            return json_response(
                {"error": "control endpoints answer loopback callers only"},
                HTTPStatus.FORBIDDEN,
            )
        try:
            response: Response = handler(request, **args)
        except (ControlRequestError, KeyError, ValueError) as exc:
            return json_response({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
        return response

    def _on_health(self, request: Request) -> Response:
        return json_response({"service": self.name, "available": self._available})

    def _on_availability(self, request: Request) -> Response:
        available = read_json(request).get("available")
        if not isinstance(available, bool):
            raise ControlRequestError('"available" must be true or false')
        self.set_available(available)
        return self._on_health(request)
