"""A small stand-in for the Azure Functions host, for the classic Python model.

Core Tools cannot be installed on the development machines, so this module
loads a function app the way the Functions host does (one folder per function
with `function.json` and a script exposing `main`) and serves it locally.

    host = FunctionsHost(Path("."), function_key="k", environ=settings)
    running = start_host(Path("."), function_key="k", port=0)
    running.base_url        # http://127.0.0.1:PORT/api
    running.function_key    # the key clients send as ?code= or x-functions-key
    running.host.fire_timer("BatchDeleteTimer")
    running.stop()

What it supports:

- HTTP triggers: ASP.NET-style route templates (`items/{id?}`, `{id:int}`,
  `{name=default}`, `{*rest}`) under `/{routePrefix}/`, `methods`, and
  `authLevel`. One key stands for every key the real host knows: function,
  host and master keys are all this one. Missing or wrong keys get 401 and the
  function is not called; exceptions get 500 without details; bodies over
  `MAX_REQUEST_BODY_BYTES` get 413.
- Timer triggers: NCRONTAB (seconds first) or TimeSpan schedules, `%SETTING%`
  resolved from `environ` then `os.environ`, `runOnStartup`, at most one
  invocation of a timer at a time; `start()` and `stop()` run the timers.
- `POST /admin/functions/{name}` runs a timer function now, as on the host.
- `add_static(path, file)` serves a file anonymously (e.g. an OpenAPI document).
- Like the Python worker, at most `PYTHON_THREADPOOL_THREAD_COUNT` invocations
  (default: `min(32, cores + 4)`, the standard thread pool's size) run at
  once; the others wait for a free thread.

`environ` is used only to resolve `%SETTING%` and `AzureWebJobs.<Name>.Disabled`;
the functions themselves read `os.environ`, which this module leaves alone.

Exceptions::

    HostError                    the app cannot be loaded or a call is refused
     └── FunctionInvocationError a function raised (the cause is chained)

Run alone with `python -m localdev.host [--app-root .] [--port N] [--key K]`.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import importlib
import inspect
import json
import logging
import mimetypes
import os
import re
import secrets
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import azure.functions as func
from azure.functions import _abc as func_abc
from azure.functions.timer import TimerRequest
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import BaseConverter, Map, Rule, ValidationError
from werkzeug.wrappers import Request, Response

from localdev.ncrontab import (
    ScheduleError,
    TimerRunner,
    parse_schedule,
    resolve_settings,
)
from localdev.servers import RunningServer, serve

__all__ = [
    "DEFAULT_ROUTE_PREFIX",
    "MAX_REQUEST_BODY_BYTES",
    "FunctionInfo",
    "FunctionInvocationError",
    "FunctionsHost",
    "HostError",
    "RunningHost",
    "main",
    "start_host",
]

logger = logging.getLogger(__name__)

DEFAULT_ROUTE_PREFIX = "api"
DEFAULT_SCRIPT_FILE = "__init__.py"
DEFAULT_ENTRY_POINT = "main"
DEFAULT_AUTH_LEVEL = "function"
DEFAULT_CLI_PORT = 7071
MAX_REQUEST_BODY_BYTES = 100 * 1024 * 1024
_THREADS_SETTING = "PYTHON_THREADPOOL_THREAD_COUNT"
TIMER_STOP_TIMEOUT_S = 30.0
FIRE_TIMER_WAIT_S = 60.0
KEY_HEADER = "x-functions-key"
KEY_QUERY_PARAMETER = "code"
CONTEXT_PARAMETER = "context"
RETURN_BINDING = "$return"
HOST_API_REASON = "This function was programmatically called via the host APIs."
AUTH_LEVELS = ("anonymous", "function", "admin")

_ROUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONSTRAINT = re.compile(r"^(\w+)(?:\((.*)\))?$", re.DOTALL)
_INTEGER = re.compile(r"^-?\d+$")
_DECIMAL = r"[-+]?(?:\d+\.?\d*|\.\d+)"
_TYPE_PATTERNS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "float": _DECIMAL + r"(?:[eE][-+]?\d+)?",
    "double": _DECIMAL + r"(?:[eE][-+]?\d+)?",
    "decimal": _DECIMAL,
    "bool": r"(?i:true|false)",
    "alpha": r"[A-Za-z]+",
    "guid": r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}",
}
_SEGMENT_PATTERN = r"[^/]+"

_Handler = Callable[[Request, Mapping[str, str]], Response]
_CATCH_ALL_PATTERN = r".*"


class HostError(Exception):
    """The function app cannot be loaded, or a host call cannot be made."""


class FunctionInvocationError(HostError):
    """A function raised; the original exception is the `__cause__`."""

    def __init__(self, function_name: str, invocation_id: str) -> None:
        super().__init__(f"Functions.{function_name} failed (Id={invocation_id})")
        self.function_name = function_name
        self.invocation_id = invocation_id


@dataclass(frozen=True)
class FunctionInfo:
    """What the host found for one function."""

    name: str
    trigger: str
    route: str | None = None
    methods: tuple[str, ...] = ()
    auth_level: str | None = None
    schedule: str | None = None


@dataclass
class _Function:
    info: FunctionInfo
    directory: Path
    entry: Callable[..., Any]
    trigger_name: str
    output_name: str | None
    wants_context: bool


# --- invocation context -------------------------------------------------------
# azure.functions exports Context but not the trace and retry parts it returns,
# so those two come from its private `_abc` module.


class _TraceContext(func_abc.TraceContext):
    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _NoException(func_abc.RpcException):
    source = ""
    stack_trace = ""
    message = ""


class _RetryContext(func_abc.RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> func_abc.RpcException:
        return _NoException()


class _Context(func.Context):
    def __init__(self, invocation_id: str, function: _Function) -> None:
        self._invocation_id = invocation_id
        self._function_name = function.info.name
        self._function_directory = str(function.directory)
        self._local = threading.local()
        self._local.invocation_id = invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        # The abstract property is annotated as a type, but the Python worker
        # hands out a `threading.local` instance carrying `invocation_id`.
        local: Any = self._local
        return local  # type: ignore[no-any-return]

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> func_abc.TraceContext:
        return _TraceContext()

    @property
    def retry_context(self) -> func_abc.RetryContext:
        return _RetryContext()


class _Out(func.Out[Any]):
    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


# --- route templates ----------------------------------------------------------


@dataclass
class _RouteParameter:
    name: str
    pattern: str
    checks: list[Callable[[str], bool]] = field(default_factory=list)
    optional: bool = False
    default: str | None = None
    catch_all: bool = False


@dataclass
class _CompiledRoute:
    rules: list[str]
    converters: dict[str, type[BaseConverter]]
    defaults: dict[str, str]


def _split_outside_parentheses(text: str, separator: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "(") - (char == ")")
        if char == separator and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _tokenize_segment(segment: str, template: str) -> list[str | _RouteParameter]:
    """Split one path segment into literal text and `{parameter}` parts."""
    tokens: list[str | _RouteParameter] = []
    position = 0
    while position < len(segment):
        start = segment.find("{", position)
        if start < 0:
            tokens.append(segment[position:])
            break
        if start > position:
            tokens.append(segment[position:start])
        end, depth = start + 1, 0
        while end < len(segment) and (segment[end] != "}" or depth > 0):
            depth += (segment[end] == "(") - (segment[end] == ")")
            end += 1
        if end >= len(segment):
            raise HostError(f"route {template!r}: unclosed '{{' in {segment!r}")
        tokens.append(_parse_parameter(segment[start + 1 : end], template))
        position = end + 1
    return tokens


def _parse_parameter(text: str, template: str) -> _RouteParameter:
    """Parse `name:constraint(arg)=default?` or `*name` into a parameter."""
    catch_all = text.startswith("*")
    text = text.lstrip("*")
    optional = text.endswith("?")
    text = text.removesuffix("?")
    head, *default = _split_outside_parentheses(text, "=")
    name, *constraints = _split_outside_parentheses(head, ":")
    if not _ROUTE_NAME.match(name):
        raise HostError(f"route {template!r}: bad parameter name {name!r}")

    parameter = _RouteParameter(
        name=name,
        pattern=_CATCH_ALL_PATTERN if catch_all else _SEGMENT_PATTERN,
        optional=optional or catch_all or bool(default),
        default=default[0] if default else None,
        catch_all=catch_all,
    )
    for constraint in constraints:
        _apply_constraint(parameter, constraint, template)
    return parameter


def _apply_constraint(
    parameter: _RouteParameter, constraint: str, template: str
) -> None:
    match = _CONSTRAINT.match(constraint)
    if match is None:
        raise HostError(f"route {template!r}: bad constraint {constraint!r}")
    kind, argument = match.group(1).lower(), (match.group(2) or "")
    arguments = [part.strip() for part in argument.split(",")]

    if kind in _TYPE_PATTERNS:
        _narrow_pattern(parameter, _TYPE_PATTERNS[kind])
    elif kind == "regex":
        _narrow_pattern(parameter, argument.replace("{{", "{").replace("}}", "}"))
    elif kind == "datetime":
        parameter.checks.append(_is_datetime)
    elif kind in ("min", "max", "range"):
        parameter.checks.append(_number_check(kind, arguments, template))
    elif kind in ("length", "minlength", "maxlength"):
        parameter.checks.append(_length_check(kind, arguments, template))
    elif kind != "required":
        raise HostError(f"route {template!r}: unknown constraint {kind!r}")


def _narrow_pattern(parameter: _RouteParameter, pattern: str) -> None:
    anchored = pattern.removeprefix("^").removesuffix("$")
    if parameter.pattern in (_SEGMENT_PATTERN, _CATCH_ALL_PATTERN):
        parameter.pattern = f"(?:{anchored})"
    else:
        parameter.checks.append(lambda value: re.fullmatch(anchored, value) is not None)


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _integer_arguments(arguments: list[str], count: int, template: str) -> list[int]:
    if len(arguments) != count or not all(_INTEGER.match(a) for a in arguments):
        raise HostError(f"route {template!r}: expected {count} integer argument(s)")
    return [int(argument) for argument in arguments]


def _number_check(
    kind: str, arguments: list[str], template: str
) -> Callable[[str], bool]:
    bounds = _integer_arguments(arguments, 2 if kind == "range" else 1, template)
    low = bounds[0] if kind in ("min", "range") else None
    high = bounds[-1] if kind in ("max", "range") else None

    def check(value: str) -> bool:
        if not _INTEGER.match(value):
            return False
        number = int(value)
        return (low is None or number >= low) and (high is None or number <= high)

    return check


def _length_check(
    kind: str, arguments: list[str], template: str
) -> Callable[[str], bool]:
    if kind == "length" and len(arguments) == 2:
        low, high = _integer_arguments(arguments, 2, template)
    else:
        (limit,) = _integer_arguments(arguments, 1, template)
        low = limit if kind in ("length", "minlength") else 0
        high = limit if kind in ("length", "maxlength") else sys.maxsize
    return lambda value: low <= len(value) <= high


def _converter_for(parameter: _RouteParameter) -> type[BaseConverter]:
    checks = tuple(parameter.checks)

    class _ParameterConverter(BaseConverter):
        regex = parameter.pattern
        part_isolating = not parameter.catch_all

        def to_python(self, value: str) -> str:
            if all(check(value) for check in checks):
                return value
            raise ValidationError()

    return _ParameterConverter


def _compile_route(prefix: str, template: str, key_base: str) -> _CompiledRoute:
    """Turn a route template into Werkzeug rules, longest first.

    Trailing optional parameters become shorter alternatives of the rule,
    since Werkzeug has no optional segments.
    """
    # Limitation: literal parts match case-sensitively here, while the
    # Functions host ignores case, so clients must spell routes exactly as
    # function.json does. Drop this note once literals match in any case.
    compiled = _CompiledRoute(rules=[], converters={}, defaults={})
    segments: list[str] = []
    first_optional: int | None = None
    for segment in (part for part in template.strip("/").split("/") if part):
        tokens = _tokenize_segment(segment, template)
        text = ""
        for token in tokens:
            if isinstance(token, str):
                text += token
                continue
            key = f"{key_base}_{len(compiled.converters)}"
            compiled.converters[key] = _converter_for(token)
            text += f"<{key}:{token.name}>"
            if token.default is not None:
                compiled.defaults[token.name] = token.default
        only = tokens[0] if len(tokens) == 1 else None
        optional = isinstance(only, _RouteParameter) and only.optional
        if optional and first_optional is None:
            first_optional = len(segments)
        elif not optional and first_optional is not None:
            raise HostError(f"route {template!r}: optional parameters must come last")
        segments.append(text)

    root = "/" + prefix.strip("/") if prefix.strip("/") else ""
    shortest = len(segments) if first_optional is None else first_optional
    for count in range(len(segments), shortest - 1, -1):
        compiled.rules.append(root + "/" + "/".join(segments[:count]))
    return compiled


# --- loading the app ------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise HostError(
            f"cannot read {path.name} in {path.parent.name}: {exc}"
        ) from exc
    if not isinstance(loaded, dict):
        raise HostError(f"{path.parent.name}/{path.name} is not a JSON object")
    return loaded


def _route_prefix(app_root: Path) -> str:
    host_json = app_root / "host.json"
    if not host_json.is_file():
        return DEFAULT_ROUTE_PREFIX
    http = _read_json(host_json).get("extensions", {}).get("http", {})
    prefix = http.get("routePrefix", DEFAULT_ROUTE_PREFIX)
    return str(prefix).strip("/")


def _put_first_on_path(directory: Path) -> None:
    entry = str(directory)
    if sys.path[:1] != [entry]:
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)


def _load_entry(app_root: Path, directory: Path, config: Mapping[str, Any]) -> Any:
    script = (directory / config.get("scriptFile", DEFAULT_SCRIPT_FILE)).resolve()
    try:
        parts = list(script.relative_to(app_root).with_suffix("").parts)
    except ValueError as exc:
        raise HostError(f"{directory.name}: scriptFile is outside the app") from exc
    if parts[-1] == "__init__":
        parts.pop()

    _put_first_on_path(app_root)
    try:
        module = importlib.import_module(".".join(parts))
    except Exception as exc:  # the app's own code may raise anything on import
        raise HostError(f"{directory.name}: cannot import {script.name}") from exc

    entry_point = config.get("entryPoint", DEFAULT_ENTRY_POINT)
    entry = getattr(module, entry_point, None)
    if not callable(entry):
        raise HostError(f"{directory.name}: no callable {entry_point!r}")
    return entry


# --- the host -------------------------------------------------------------------


class FunctionsHost:
    """Load the function app under `app_root`; serve it with `wsgi_app`.

    Raises HostError when a function cannot be loaded, a binding is not
    supported, or a `%SETTING%` in a schedule is not defined.
    """

    def __init__(
        self,
        app_root: Path,
        *,
        function_key: str,
        environ: Mapping[str, str] | None = None,
        max_body_bytes: int = MAX_REQUEST_BODY_BYTES,
    ) -> None:
        if not function_key:
            raise HostError("function_key must not be empty")
        self.app_root = app_root.resolve()
        self.route_prefix = _route_prefix(self.app_root)
        self._function_key = function_key
        self._settings: tuple[Mapping[str, str], ...] = (
            (os.environ,) if environ is None else (environ, os.environ)
        )
        self._max_body_bytes = max_body_bytes
        self._threads = threading.BoundedSemaphore(self._thread_count())
        self._url_map = Map(strict_slashes=False, merge_slashes=False)
        self._handlers: dict[str, _Handler] = {}
        self._functions: dict[str, _Function] = {}
        self._timers: dict[str, TimerRunner] = {}
        self._add_admin_routes()
        for config_path in sorted(self.app_root.glob("*/function.json")):
            self._load_function(config_path.parent, _read_json(config_path))
        if not self._functions:
            logger.warning("No functions found under %s", self.app_root)

    def __repr__(self) -> str:
        return (
            f"FunctionsHost({str(self.app_root)!r}, functions={len(self._functions)})"
        )

    @property
    def functions(self) -> Mapping[str, FunctionInfo]:
        """What was found, by function name."""
        return {name: fn.info for name, fn in self._functions.items()}

    def wsgi_app(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """The WSGI application serving HTTP triggers and static files."""
        request = Request(environ)
        response = self._dispatch(request)
        result: Iterable[bytes] = response(environ, start_response)
        return result

    def add_static(self, path: str, file: Path, *, mimetype: str | None = None) -> None:
        """Serve `file` at `path` (from the server root) for GET, no key needed."""
        content_type = mimetype or mimetypes.guess_type(file.name)[0]
        endpoint = f"static:{path}"
        self._handlers[endpoint] = partial(
            _serve_file, file, content_type or "application/octet-stream"
        )
        self._url_map.add(
            Rule("/" + path.lstrip("/"), endpoint=endpoint, methods=["GET"])
        )

    def start(self) -> None:
        """Start the timer triggers (and run those marked runOnStartup)."""
        for timer in self._timers.values():
            timer.start()

    def stop(self, timeout: float = TIMER_STOP_TIMEOUT_S) -> None:
        """Stop the timers, waiting up to `timeout` s for running invocations."""
        deadline = time.monotonic() + timeout
        for timer in self._timers.values():
            timer.stop(max(0.0, deadline - time.monotonic()))

    def fire_timer(self, name: str) -> None:
        """Run timer function `name` now, in this thread.

        Waits for a running invocation of it to end first. Raises HostError if
        there is no such timer, FunctionInvocationError if the function raises.
        """
        timer = self._timers.get(name)
        if timer is None:
            raise HostError(f"no timer function named {name!r}")
        try:
            timer.run_now(HOST_API_REASON, wait=FIRE_TIMER_WAIT_S)
        except TimeoutError as exc:
            raise HostError(f"Functions.{name} is still running") from exc

    # --- loading ---

    def _load_function(self, directory: Path, config: Mapping[str, Any]) -> None:
        name = directory.name
        if self._is_disabled(name, config):
            logger.info("Function %s is disabled", name)
            return

        bindings = config.get("bindings", [])
        triggers = [b for b in bindings if str(b.get("type", "")).endswith("Trigger")]
        outputs = [b for b in bindings if b.get("type") == "http"]
        unsupported = [b for b in bindings if b not in triggers and b not in outputs]
        if len(triggers) != 1 or unsupported:
            raise HostError(f"{name}: needs one trigger and only http outputs")

        trigger = triggers[0]
        entry = _load_entry(self.app_root, directory, config)
        parameters = inspect.signature(entry).parameters
        output_name = outputs[0].get("name", RETURN_BINDING) if outputs else None
        for binding_name in (trigger.get("name"), output_name):
            if binding_name not in (None, RETURN_BINDING, *parameters):
                raise HostError(f"{name}: main has no parameter {binding_name!r}")

        function = _Function(
            info=FunctionInfo(name=name, trigger=str(trigger["type"])),
            directory=directory,
            entry=entry,
            trigger_name=str(trigger.get("name")),
            output_name=output_name,
            wants_context=CONTEXT_PARAMETER in parameters,
        )
        if trigger["type"] == "httpTrigger":
            self._add_http_function(function, trigger)
        elif trigger["type"] == "timerTrigger":
            self._add_timer_function(function, trigger)
        else:
            raise HostError(f"{name}: trigger type {trigger['type']!r} not supported")
        self._functions[name] = function

    def _thread_count(self) -> int:
        """The worker's thread pool size: the setting, else the default of
        Python's own thread pool, which the worker uses when it is unset."""
        values = [s[_THREADS_SETTING] for s in self._settings if _THREADS_SETTING in s]
        if values and values[0].isdigit() and int(values[0]) > 0:
            return int(values[0])
        return min(32, (os.cpu_count() or 1) + 4)

    def _is_disabled(self, name: str, config: Mapping[str, Any]) -> bool:
        setting = f"AzureWebJobs.{name}.Disabled"
        values = [source[setting] for source in self._settings if setting in source]
        flag = values[0] if values else config.get("disabled", False)
        return str(flag).lower() in ("true", "1")

    def _add_http_function(
        self, function: _Function, trigger: Mapping[str, Any]
    ) -> None:
        name = function.info.name
        auth_level = str(trigger.get("authLevel", DEFAULT_AUTH_LEVEL)).lower()
        if auth_level not in AUTH_LEVELS:
            raise HostError(f"{name}: unknown authLevel {auth_level!r}")
        methods = tuple(str(m).upper() for m in trigger.get("methods") or ())
        template = str(trigger.get("route") or name)
        function.info = FunctionInfo(
            name, "httpTrigger", template, methods, auth_level=auth_level
        )

        endpoint = f"function:{name}"
        route = _compile_route(self.route_prefix, template, f"r{len(self._handlers)}")
        self._url_map.converters.update(route.converters)
        for rule in route.rules:
            self._url_map.add(Rule(rule, endpoint=endpoint, methods=methods or None))
        self._handlers[endpoint] = partial(
            self._serve_function, function, auth_level, route.defaults
        )

    def _add_timer_function(
        self, function: _Function, trigger: Mapping[str, Any]
    ) -> None:
        name = function.info.name
        expression = str(trigger.get("schedule", ""))
        try:
            resolved = resolve_settings(expression, *self._settings)
            schedule = parse_schedule(resolved)
        except ScheduleError as exc:
            raise HostError(f"{name}: timer schedule: {exc}") from exc

        function.info = FunctionInfo(name, "timerTrigger", schedule=resolved)
        self._timers[name] = TimerRunner(
            f"Functions.{name}",
            schedule,
            run_on_startup=bool(trigger.get("runOnStartup", False)),
            invoke=partial(self._invoke_timer, function),
        )

    def _invoke_timer(self, function: _Function, past_due: bool, reason: str) -> None:
        self._invoke(function, TimerRequest(past_due=past_due), reason)

    def _add_admin_routes(self) -> None:
        endpoint = "admin:functions"
        self._url_map.add(
            Rule("/admin/functions/<name>", endpoint=endpoint, methods=["POST"])
        )
        self._handlers[endpoint] = self._serve_admin_invoke

    # --- HTTP ---

    def _dispatch(self, request: Request) -> Response:
        adapter = self._url_map.bind_to_environ(request.environ)
        try:
            endpoint, arguments = adapter.match()
        except MethodNotAllowed as exc:
            return _empty(405, allow=", ".join(exc.valid_methods or ()))
        except HTTPException:
            return _empty(404)
        route_values = {key: str(value) for key, value in arguments.items()}
        return self._handlers[endpoint](request, route_values)

    def _key_matches(self, request: Request) -> bool:
        supplied = request.headers.get(KEY_HEADER) or request.args.get(
            KEY_QUERY_PARAMETER
        )
        if not supplied:
            return False
        return hmac.compare_digest(supplied.encode(), self._function_key.encode())

    def _serve_function(
        self,
        function: _Function,
        auth_level: str,
        defaults: Mapping[str, str],
        request: Request,
        route_params: Mapping[str, str],
    ) -> Response:
        if auth_level != "anonymous" and not self._key_matches(request):
            return _empty(401)
        body = _read_body(request, self._max_body_bytes)
        if body is None:
            return _empty(413)

        http_request = func.HttpRequest(
            request.method,
            request.url,
            headers=dict(request.headers.items()),
            params=request.args.to_dict(),
            route_params={**defaults, **route_params},
            body=body,
        )
        try:
            result = self._invoke(function, http_request, HOST_API_REASON)
            return _to_werkzeug(result)
        except FunctionInvocationError:
            return _empty(500)
        except TypeError:
            logger.exception(
                "Functions.%s returned an unusable value", function.info.name
            )
            return _empty(500)

    def _serve_admin_invoke(
        self, request: Request, arguments: Mapping[str, str]
    ) -> Response:
        if not self._key_matches(request):
            return _empty(401)
        timer = self._timers.get(arguments["name"])
        if timer is None:
            return _empty(404)
        timer.launch(past_due=False, reason=HOST_API_REASON)
        return _empty(202)

    # --- invocation ---

    def _invoke(self, function: _Function, trigger_value: Any, reason: str) -> Any:
        """Call one function as the host does, with its two log lines."""
        name = function.info.name
        invocation_id = str(uuid.uuid4())
        logger.info(
            "Executing 'Functions.%s' (Reason='%s', Id=%s)", name, reason, invocation_id
        )
        arguments: dict[str, Any] = {function.trigger_name: trigger_value}
        output = None
        if function.output_name not in (None, RETURN_BINDING):
            output = arguments[str(function.output_name)] = _Out()
        if function.wants_context:
            arguments[CONTEXT_PARAMETER] = _Context(invocation_id, function)

        started = time.monotonic()
        try:
            with self._threads:
                result = function.entry(**arguments)
            if inspect.isawaitable(result):
                result = asyncio.run(_await(result))
        except Exception as exc:
            logger.error(
                "Exception while executing function: Functions.%s", name, exc_info=True
            )
            _log_executed(name, "Failed", invocation_id, started)
            raise FunctionInvocationError(name, invocation_id) from exc
        _log_executed(name, "Succeeded", invocation_id, started)
        return output.get() if output is not None else result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _log_executed(name: str, outcome: str, invocation_id: str, started: float) -> None:
    duration_ms = round((time.monotonic() - started) * 1000)
    logger.info(
        "Executed 'Functions.%s' (%s, Id=%s, Duration=%dms)",
        name,
        outcome,
        invocation_id,
        duration_ms,
    )


def _empty(status: int, **headers: str) -> Response:
    response = Response(b"", status=status)
    for key, value in headers.items():
        response.headers[key.replace("_", "-").title()] = value
    return response


def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is larger than `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = request.stream.read(limit + 1)
    return None if len(body) > limit else body


def _to_werkzeug(result: Any) -> Response:
    """Convert what a function returned; raises TypeError on other types."""
    if isinstance(result, str | bytes):
        return Response(result, status=200, mimetype="text/plain")
    if not isinstance(result, func.HttpResponse):
        raise TypeError(f"expected an HttpResponse, got {type(result).__name__}")

    headers = list(result.headers.items())
    if not any(key.lower() == "content-type" for key, _ in headers):
        # As the Python worker does: the charset is added for text types only.
        content_type = result.mimetype
        if content_type.startswith("text/"):
            content_type += f"; charset={result.charset}"
        headers.append(("Content-Type", content_type))
    return Response(result.get_body(), status=result.status_code, headers=headers)


def _serve_file(
    file: Path, content_type: str, request: Request, arguments: Mapping[str, str]
) -> Response:
    try:
        data = file.read_bytes()
    except OSError:
        return _empty(404)
    return Response(data, status=200, content_type=content_type)


# --- serving --------------------------------------------------------------------


class RunningHost:
    """A host served over HTTP with its timers running; `stop()` ends both."""

    def __init__(self, host: FunctionsHost, server: RunningServer, function_key: str):
        self.host = host
        self.server = server
        self.function_key = function_key
        self.url = server.url
        prefix = f"/{host.route_prefix}" if host.route_prefix else ""
        self.base_url = f"{server.url}{prefix}"

    def __repr__(self) -> str:
        return f"RunningHost(base_url={self.base_url!r}, function_key='***')"

    def stop(self) -> None:
        """Stop serving, then stop the timers."""
        self.server.stop()
        self.host.stop()

    def __enter__(self) -> RunningHost:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_host(
    app_root: Path,
    *,
    function_key: str,
    port: int = 0,
    environ: Mapping[str, str] | None = None,
) -> RunningHost:
    """Load the app, serve it on 127.0.0.1:`port` and start its timers."""
    host = FunctionsHost(app_root, function_key=function_key, environ=environ)
    server = serve(host.wsgi_app, port=port)
    host.start()
    return RunningHost(host, server, function_key)


def _describe(running: RunningHost) -> Iterable[str]:
    for info in running.host.functions.values():
        if info.route is not None:
            methods = ",".join(info.methods) or "ALL"
            yield f"{info.name}: [{methods}] {running.base_url}/{info.route}"
        else:
            yield f"{info.name}: timerTrigger ({info.schedule})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the host in the foreground until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m localdev.host")
    parser.add_argument(
        "--app-root", type=Path, default=Path("."), help="folder with host.json"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_CLI_PORT, help="0 picks a free port"
    )
    parser.add_argument("--key", help="function key (default: a random one)")
    options = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    key = options.key or secrets.token_urlsafe(32)
    running = start_host(options.app_root, function_key=key, port=options.port)
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    for line in _describe(running):
        logger.info("%s", line)
    print(f"FUNCTION_BASE_URL={running.base_url}", flush=True)
    print(f"FUNCTION_KEY={key}", flush=True)
    stopping.wait()
    running.stop()
    return 0


if __name__ == "__main__":
    # Run the imported module's `main`, so that its logger is "localdev.host"
    # and its classes are the ones other modules see, not copies in __main__.
    from localdev.host import main as _imported_main

    sys.exit(_imported_main())
