"""The local functions host, driven over real HTTP with a sample function app."""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
import requests
from werkzeug.test import Client

from localdev.host import (
    FunctionInvocationError,
    FunctionsHost,
    HostError,
    RunningHost,
    start_host,
)
from localdev.ncrontab import (
    ScheduleError,
    TimerRunner,
    parse_schedule,
    resolve_settings,
)
from localdev.servers import serve

SAMPLE_APP = Path(__file__).parent / "sample_app"
REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = "sample-function-key"
YEARLY = "0 0 0 1 1 *"
EVERY_SECOND = "*/1 * * * * *"
HTTP_TIMEOUT = (2, 5)
WAIT_S = 5.0
CLI_WAIT_S = 20.0
HOST_LOGGER = "localdev.host"
HOST_API_REASON = "This function was programmatically called via the host APIs."


@pytest.fixture(scope="module")
def running() -> Iterator[RunningHost]:
    with start_host(
        SAMPLE_APP, function_key=KEY, environ={"SAMPLE_SCHEDULE": YEARLY}
    ) as running_host:
        yield running_host


@pytest.fixture
def recorder(running: RunningHost) -> Iterator[Any]:
    # Importable once a host has put the app root on sys.path.
    shared = importlib.import_module("sample_support").recorder
    shared.reset()
    yield shared
    shared.reset()


@pytest.fixture
def timer_host(recorder: Any) -> Iterator[FunctionsHost]:
    host = FunctionsHost(
        SAMPLE_APP, function_key=KEY, environ={"SAMPLE_SCHEDULE": EVERY_SECOND}
    )
    yield host
    recorder.timer_gate.set()
    host.stop()


@pytest.fixture
def host_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=HOST_LOGGER)
    caplog.set_level(logging.INFO, logger="localdev.ncrontab")
    return caplog


def _get(url: str, **kwargs: Any) -> requests.Response:
    return requests.get(url, timeout=HTTP_TIMEOUT, **kwargs)


def _make_app(root: Path, function_json: dict[str, Any], code: str) -> str:
    """Write a one-function app under `root`; returns the function's name."""
    name = f"Probe{uuid.uuid4().hex[:10]}"
    (root / name).mkdir(parents=True)
    (root / name / "function.json").write_text(json.dumps(function_json))
    (root / name / "__init__.py").write_text(code)
    return name


def _http_function(route: str | None = None, **trigger: Any) -> dict[str, Any]:
    binding = {"type": "httpTrigger", "direction": "in", "name": "req"}
    binding.update(authLevel="anonymous", **trigger)
    if route is not None:
        binding["route"] = route
    return {
        "bindings": [binding, {"type": "http", "direction": "out", "name": "$return"}]
    }


PONG = """import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")
"""


# --- routing and bindings -------------------------------------------------------


def test_optional_route_parameter_is_passed_when_present(
    running: RunningHost, recorder: Any
) -> None:
    response = _get(
        f"{running.base_url}/items/42?x=1", headers={"x-functions-key": KEY}
    )

    assert response.status_code == 200
    echo = response.json()
    assert echo["route_params"] == {"itemId": "42"}
    assert echo["params"] == {"x": "1"}
    assert response.headers["X-Sample"] == "items"
    assert response.headers["Content-Type"] == "application/json"
    request = recorder.calls[0][1]
    assert isinstance(request, func.HttpRequest)
    assert request.url.startswith(f"{running.base_url}/items/42")


@pytest.mark.parametrize("path", ["items", "items/"])
def test_optional_route_parameter_may_be_left_out(
    running: RunningHost, recorder: Any, path: str
) -> None:
    response = _get(f"{running.base_url}/{path}", params={"code": KEY})

    assert response.status_code == 200
    assert response.json()["route_params"] == {}


def test_function_without_route_is_served_at_its_name_with_named_output(
    running: RunningHost, recorder: Any
) -> None:
    response = requests.delete(
        f"{running.base_url}/SampleAnonymous", timeout=HTTP_TIMEOUT
    )

    assert response.status_code == 201
    assert response.text == "hello"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert recorder.names() == ["SampleAnonymous"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("orders/7/lines/2", 200),
        ("orders/-7/lines/2", 200),
        ("orders/seven/lines/2", 404),
        ("orders/7/lines/0", 404),
        ("orders/7/lines", 404),
        ("no/such/route", 404),
    ],
)
def test_route_constraints_decide_what_matches(
    running: RunningHost, path: str, status: int
) -> None:
    response = _get(f"{running.base_url}/{path}")

    assert response.status_code == status
    if status == 404:
        assert response.content == b""


def test_method_not_listed_is_405_and_function_not_called(
    running: RunningHost, recorder: Any
) -> None:
    response = requests.put(
        f"{running.base_url}/items/1", params={"code": KEY}, timeout=HTTP_TIMEOUT
    )

    assert response.status_code == 405
    assert {"GET", "POST"} <= set(response.headers["Allow"].split(", "))
    assert recorder.calls == []


def test_post_body_reaches_the_function(running: RunningHost, recorder: Any) -> None:
    response = requests.post(
        f"{running.base_url}/items/9",
        data=b'{"ids": ["a"]}',
        headers={"x-functions-key": KEY},
        timeout=HTTP_TIMEOUT,
    )

    assert response.json()["method"] == "POST"
    assert response.json()["body"] == '{"ids": ["a"]}'


def test_context_carries_invocation_id_and_function_name(
    running: RunningHost, recorder: Any, host_logs: pytest.LogCaptureFixture
) -> None:
    echo = _get(f"{running.base_url}/items", params={"code": KEY}).json()

    assert echo["function_name"] == "SampleItems"
    assert str(uuid.UUID(echo["invocation_id"])) == echo["invocation_id"]
    assert f"Id={echo['invocation_id']}" in host_logs.text


# --- keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "where", [{"params": {"code": KEY}}, {"headers": {"x-functions-key": KEY}}]
)
def test_function_key_is_accepted_from_query_or_header(
    running: RunningHost, recorder: Any, where: dict[str, Any]
) -> None:
    response = _get(f"{running.base_url}/items/1", **where)

    assert response.status_code == 200
    assert recorder.names() == ["SampleItems"]


@pytest.mark.parametrize(
    "where",
    [
        {},
        {"params": {"code": "wrong"}},
        {"headers": {"x-functions-key": "wrong"}},
        {"params": {"code": ""}},
    ],
)
def test_missing_or_wrong_key_is_401_without_calling_the_function(
    running: RunningHost, recorder: Any, where: dict[str, Any]
) -> None:
    response = _get(f"{running.base_url}/items/1", **where)

    assert response.status_code == 401
    assert response.content == b""
    assert recorder.calls == []


def test_logs_never_show_the_key_or_query_string(
    running: RunningHost, recorder: Any, host_logs: pytest.LogCaptureFixture
) -> None:
    _get(f"{running.base_url}/items/1", params={"code": KEY, "secret": "q"})
    _get(f"{running.base_url}/items/1", headers={"x-functions-key": KEY})

    assert "Executing 'Functions.SampleItems'" in host_logs.text
    assert KEY not in host_logs.text
    assert "secret" not in host_logs.text


# --- failures and limits --------------------------------------------------------


def test_exception_is_500_without_details_and_logged_with_traceback(
    running: RunningHost, host_logs: pytest.LogCaptureFixture
) -> None:
    response = _get(f"{running.base_url}/broken")

    assert response.status_code == 500
    assert response.content == b""
    failed = [r for r in host_logs.records if r.levelno == logging.ERROR]
    assert failed and failed[0].exc_info is not None
    assert "Executed 'Functions.SampleBroken' (Failed, Id=" in host_logs.text


@pytest.fixture
def small_body_server(recorder: Any) -> Iterator[str]:
    host = FunctionsHost(
        SAMPLE_APP,
        function_key=KEY,
        environ={"SAMPLE_SCHEDULE": YEARLY},
        max_body_bytes=16,
    )
    with serve(host.wsgi_app) as server:
        yield f"{server.url}/api/items?code={KEY}"


def test_body_at_the_cap_is_accepted(small_body_server: str, recorder: Any) -> None:
    response = requests.post(small_body_server, data=b"x" * 16, timeout=HTTP_TIMEOUT)

    assert response.status_code == 200


@pytest.mark.parametrize("chunked", [False, True])
def test_body_over_the_cap_is_413_without_calling_the_function(
    small_body_server: str, recorder: Any, chunked: bool
) -> None:
    body = b"x" * 17
    data = iter([body[:10], body[10:]]) if chunked else body

    response = requests.post(small_body_server, data=data, timeout=HTTP_TIMEOUT)

    assert response.status_code == 413
    assert recorder.calls == []


# --- extra routes and loading ---------------------------------------------------


def test_static_file_is_served_without_a_key(
    running: RunningHost, tmp_path: Path
) -> None:
    document = tmp_path / "openapi.json"
    document.write_text('{"openapi": "3.0.3"}')
    running.host.add_static("/api/openapi.json", document)

    response = _get(f"{running.base_url}/openapi.json")

    assert response.json() == {"openapi": "3.0.3"}
    assert response.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(("prefix", "path"), [("v1", "/v1/ping"), ("", "/ping")])
def test_route_prefix_comes_from_host_json(
    tmp_path: Path, prefix: str, path: str
) -> None:
    (tmp_path / "host.json").write_text(
        json.dumps({"version": "2.0", "extensions": {"http": {"routePrefix": prefix}}})
    )
    _make_app(tmp_path, _http_function("ping"), PONG)
    client = Client(FunctionsHost(tmp_path, function_key=KEY).wsgi_app)

    assert client.get(path).status_code == 200
    assert client.get(f"/api{path}").status_code == 404


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ("a/{x?}/b", "optional parameters must come last"),
        ("a/{x:bogus}", "unknown constraint"),
        ("a/{x", "unclosed"),
        ("a/{x:min(one)}", "integer argument"),
    ],
)
def test_bad_route_template_is_refused_at_load(
    tmp_path: Path, route: str, message: str
) -> None:
    _make_app(tmp_path, _http_function(route), PONG)

    with pytest.raises(HostError, match=message):
        FunctionsHost(tmp_path, function_key=KEY)


@pytest.mark.parametrize(
    ("route", "path"),
    [
        ("files/{*rest}", "/api/files/a/b/c"),
        ("files/{*rest}", "/api/files"),
        ("w/{id:guid}", "/api/w/0f8fad5b-d9cb-469f-a165-70867728950e"),
        ("w/{flag:bool}", "/api/w/True"),
        ("w/{name:alpha:length(2,4)}", "/api/w/abc"),
        ("w/{page=1}", "/api/w"),
        ("w/{id:regex(^\\d{{3}}$)}", "/api/w/123"),
    ],
)
def test_route_template_forms_match(tmp_path: Path, route: str, path: str) -> None:
    _make_app(tmp_path, _http_function(route), PONG)
    client = Client(FunctionsHost(tmp_path, function_key=KEY).wsgi_app)

    assert client.get(path).status_code == 200


def test_function_whose_main_lacks_the_binding_parameter_is_refused(
    tmp_path: Path,
) -> None:
    code = PONG.replace("main(req:", "main(request:")
    _make_app(tmp_path, _http_function("ping"), code)

    with pytest.raises(HostError, match="no parameter 'req'"):
        FunctionsHost(tmp_path, function_key=KEY)


def test_unsupported_binding_is_refused(tmp_path: Path) -> None:
    config = _http_function("ping")
    config["bindings"].append({"type": "table", "direction": "in", "name": "rows"})
    _make_app(tmp_path, config, PONG)

    with pytest.raises(HostError, match="only http outputs"):
        FunctionsHost(tmp_path, function_key=KEY)


def test_disabled_function_is_not_served(tmp_path: Path) -> None:
    name = _make_app(tmp_path, _http_function("ping"), PONG)
    settings = {f"AzureWebJobs.{name}.Disabled": "true"}
    host = FunctionsHost(tmp_path, function_key=KEY, environ=settings)

    assert host.functions == {}
    assert Client(host.wsgi_app).get("/api/ping").status_code == 404


# --- schedules ------------------------------------------------------------------

MONDAY_NOON = datetime(2024, 1, 1, 12, 0, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 */5 * * * *", datetime(2024, 1, 1, 12, 5, 0, tzinfo=UTC)),
        ("*/10 * * * * *", datetime(2024, 1, 1, 12, 0, 10, tzinfo=UTC)),
        ("30 0 12 * * *", datetime(2024, 1, 1, 12, 0, 30, tzinfo=UTC)),
        ("0 30 9 * * 1-5", datetime(2024, 1, 2, 9, 30, 0, tzinfo=UTC)),
        ("0 0 0 * * Sun", datetime(2024, 1, 7, 0, 0, 0, tzinfo=UTC)),
        ("0 0 0 1 1 *", datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)),
        ("*/15 * * * *", datetime(2024, 1, 1, 12, 15, 0, tzinfo=UTC)),
        ("00:05:00", datetime(2024, 1, 1, 12, 5, 7, tzinfo=UTC)),
        ("1.02:00:00", datetime(2024, 1, 2, 14, 0, 7, tzinfo=UTC)),
    ],
)
def test_schedule_next_occurrence(expression: str, expected: datetime) -> None:
    assert parse_schedule(expression).next_after(MONDAY_NOON) == expected


@pytest.mark.parametrize(
    "expression", ["* * *", "61 * * * * *", "0 0 25 * * *", "24:00:00", "00:00:00", ""]
)
def test_bad_schedule_is_refused(expression: str) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(expression)


def test_setting_is_resolved_from_environ_before_os_environ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SAMPLE_SCHEDULE", "from os.environ")

    assert resolve_settings("%SAMPLE_SCHEDULE%", {"SAMPLE_SCHEDULE": "mine"}) == "mine"
    assert resolve_settings("%SAMPLE_SCHEDULE%", {}, os.environ) == "from os.environ"


def test_unresolved_schedule_setting_is_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SAMPLE_SCHEDULE", raising=False)

    with pytest.raises(HostError, match="SAMPLE_SCHEDULE"):
        FunctionsHost(SAMPLE_APP, function_key=KEY, environ={})


# --- timers ---------------------------------------------------------------------


def test_fire_timer_runs_the_function_now_with_a_timer_request(
    running: RunningHost, recorder: Any, host_logs: pytest.LogCaptureFixture
) -> None:
    running.host.fire_timer("SampleTimer")

    ((name, timer),) = recorder.calls
    assert name == "SampleTimer"
    assert isinstance(timer, func.TimerRequest)
    assert timer.past_due is False
    expected = f"Executing 'Functions.SampleTimer' (Reason='{HOST_API_REASON}', Id="
    assert expected in host_logs.text


def test_fire_timer_raises_when_the_function_fails(
    running: RunningHost, recorder: Any
) -> None:
    recorder.timer_fails = True

    with pytest.raises(FunctionInvocationError) as raised:
        running.host.fire_timer("SampleTimer")

    assert isinstance(raised.value.__cause__, RuntimeError)


def test_fire_timer_of_an_unknown_function_is_an_error(running: RunningHost) -> None:
    with pytest.raises(HostError, match="NoSuchTimer"):
        running.host.fire_timer("NoSuchTimer")


def test_admin_api_runs_a_timer_function_with_the_key(
    running: RunningHost, recorder: Any
) -> None:
    url = f"{running.url}/admin/functions/SampleTimer"

    refused = requests.post(url, timeout=HTTP_TIMEOUT)
    accepted = requests.post(
        url, headers={"x-functions-key": KEY}, timeout=HTTP_TIMEOUT
    )

    assert refused.status_code == 401
    assert accepted.status_code == 202
    assert recorder.timer_started.wait(WAIT_S)


def test_timer_every_second_fires_within_a_few_seconds(
    timer_host: FunctionsHost, recorder: Any, host_logs: pytest.LogCaptureFixture
) -> None:
    timer_host.start()

    assert recorder.timer_started.wait(WAIT_S)
    timer_host.stop()
    assert isinstance(recorder.calls[0][1], func.TimerRequest)
    assert "(Reason='Timer fired at " in host_logs.text
    assert "Executed 'Functions.SampleTimer' (Succeeded" in host_logs.text


def test_tick_while_the_previous_invocation_runs_is_skipped(
    timer_host: FunctionsHost, recorder: Any, host_logs: pytest.LogCaptureFixture
) -> None:
    recorder.timer_gate.clear()
    timer_host.start()
    assert recorder.timer_started.wait(WAIT_S)

    deadline = time.monotonic() + WAIT_S
    while "Skipping Functions.SampleTimer" not in host_logs.text:
        assert time.monotonic() < deadline, "no tick was skipped"
        time.sleep(0.1)
    recorder.timer_gate.set()
    timer_host.stop()

    assert recorder.names()[:1] == ["SampleTimer"]
    assert len(recorder.calls) <= 2


class _Once:
    """A schedule whose first occurrence is `first`, then none for a year."""

    def __init__(self, first: datetime) -> None:
        self.first: datetime | None = first

    def next_after(self, moment: datetime) -> datetime:
        first, self.first = self.first, None
        return first if first is not None else moment + timedelta(days=365)


def test_late_tick_is_past_due() -> None:
    calls: list[bool] = []
    called = threading.Event()

    def invoke(past_due: bool, reason: str) -> None:
        calls.append(past_due)
        called.set()

    late = datetime.now(UTC) - timedelta(seconds=5)
    runner = TimerRunner("late", _Once(late), run_on_startup=False, invoke=invoke)
    runner.start()
    assert called.wait(WAIT_S)
    runner.stop(WAIT_S)

    assert calls == [True]


def test_stop_waits_for_a_running_invocation() -> None:
    finished = threading.Event()

    def invoke(past_due: bool, reason: str) -> None:
        time.sleep(0.3)
        finished.set()

    far = datetime.now(UTC) + timedelta(days=1)
    runner = TimerRunner("slow", _Once(far), run_on_startup=True, invoke=invoke)
    runner.start()
    runner.stop(WAIT_S)

    assert finished.is_set()


def test_stop_gives_up_on_a_stuck_invocation_after_the_timeout(
    host_logs: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    far = datetime.now(UTC) + timedelta(days=1)
    runner = TimerRunner(
        "stuck", _Once(far), run_on_startup=True, invoke=lambda *_: release.wait(WAIT_S)
    )
    runner.start()

    started = time.monotonic()
    runner.stop(0.2)
    release.set()

    assert time.monotonic() - started < 2
    assert "stuck still running" in host_logs.text


# --- command line ---------------------------------------------------------------


def _first_lines(process: subprocess.Popen[str], count: int) -> list[str]:
    """The first `count` lines the process prints, or fewer after CLI_WAIT_S."""
    lines: list[str] = []
    stdout = process.stdout
    assert stdout is not None

    def read() -> None:
        while len(lines) < count and (line := stdout.readline()):
            lines.append(line.strip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(CLI_WAIT_S)
    return lines


def test_command_line_prints_base_url_and_key_and_serves() -> None:
    env = {**os.environ, "SAMPLE_SCHEDULE": YEARLY}
    command = [sys.executable, "-m", "localdev.host", "--app-root", str(SAMPLE_APP)]
    process = subprocess.Popen(
        [*command, "--port", "0", "--key", KEY],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        base_line, key_line = _first_lines(process, 2)
        base_url = base_line.removeprefix("FUNCTION_BASE_URL=")
        response = _get(f"{base_url}/items/5", params={"code": KEY})
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)

    assert base_line.startswith("FUNCTION_BASE_URL=http://127.0.0.1:")
    assert base_url.endswith("/api")
    assert key_line == f"FUNCTION_KEY={KEY}"
    assert response.status_code == 200
    assert process.returncode == 0


OVERLAP = """import threading
import time

import azure.functions as func

_lock = threading.Lock()
_running = 0
_most = 0


def main(req: func.HttpRequest) -> func.HttpResponse:
    global _running, _most
    with _lock:
        _running += 1
        _most = max(_most, _running)
    time.sleep(0.2)
    with _lock:
        _running -= 1
    return func.HttpResponse(str(_most))
"""


def test_invocations_beyond_the_worker_threads_wait_their_turn(
    tmp_path: Path,
) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0"}))
    name = _make_app(tmp_path, _http_function(), OVERLAP)
    host = FunctionsHost(
        tmp_path, function_key=KEY, environ={"PYTHON_THREADPOOL_THREAD_COUNT": "2"}
    )
    answers: list[int] = []

    with serve(host.wsgi_app) as server:

        def call() -> None:
            response = requests.get(f"{server.url}/api/{name}", timeout=10)
            answers.append(int(response.text))

        callers = [threading.Thread(target=call) for _ in range(6)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(10)

    assert len(answers) == 6
    assert max(answers) == 2
