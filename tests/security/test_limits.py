"""Size and shape limits: what is too big, too deep or of the wrong kind is
refused cheaply, with a 4xx that says which limit, and before it is parsed.

Most cases call the HTTP function directly with real `azure.functions`
objects; the host's own body cap is tested over real HTTP through the local
functions host.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import azure.functions as func
import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError

from localdev.host import MAX_REQUEST_BODY_BYTES
from localdev.stack import LocalStack
from shared.http_api import (
    MAX_BODY_BYTES,
    MAX_TEXT_FIELD_CHARS,
    MAX_VALUE_CHARS,
    MAX_VALUES_PER_REQUEST,
)
from shared.ids import MAX_REPORTED_PROBLEMS
from shared.service import get_service
from shared.settings import Settings
from shared.storage import open_state_table
from tests.integration.helpers import batch_calls, body_of, post
from tests.log_capture import captured_records

if TYPE_CHECKING:
    from tests.conftest import IsolatedApp

pytestmark = pytest.mark.integration

TEXT_FIELDS = (
    "reason",
    "requestedBy",
    "requestId",
    "incidentId",
    "incidentUrl",
    "tenantId",
    "indicatorType",
)
KEY_HEADER = "x-functions-key"
HTTP_TIMEOUT_S = 120
# An error answer may restate the request's problems, but not balloon: at most
# this many bytes beyond a fixed allowance.
ERROR_ALLOWANCE_BYTES = 8_192


def error_of(response: func.HttpResponse) -> dict[str, Any]:
    error: dict[str, Any] = body_of(response)["error"]
    assert error["code"] and error["message"].strip()
    return error


def nothing_reached_defender(stack: LocalStack) -> bool:
    assert stack.emulator is not None
    return batch_calls(stack.emulator.emulator.calls()) == []


def padded_request(size: int) -> bytes:
    """A valid delete request of exactly `size` bytes (padding in `reason`
    is as long as the body needs, whatever the text-field limit)."""
    head, tail = b'{"IndicatorIds": ["1"], "reason": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


# --- the body's size ------------------------------------------------------------------


@pytest.mark.parametrize("size", [MAX_BODY_BYTES + 1, 5 * MAX_BODY_BYTES])
def test_a_body_past_the_cap_is_refused_with_413_naming_the_cap(
    stack: LocalStack, tenant: list[dict[str, Any]], size: int
) -> None:
    response = post(None, raw=padded_request(size))

    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "PayloadTooLarge"
    assert str(MAX_BODY_BYTES) in error["message"]
    assert str(size) in error["message"]
    assert nothing_reached_defender(stack)


@pytest.mark.parametrize(
    "filler",
    [b"{", b"[", b"\xff", b'{"IndicatorIds": [', b"\x00"],
    ids=["braces", "brackets", "not UTF-8", "unfinished", "NUL bytes"],
)
def test_a_body_past_the_cap_is_refused_by_size_before_it_is_parsed(
    filler: bytes,
) -> None:
    body = (filler * (MAX_BODY_BYTES // len(filler) + 2))[: MAX_BODY_BYTES + 1]

    response = post(None, raw=body)

    assert response.status_code == 413
    assert str(MAX_BODY_BYTES) in error_of(response)["message"]


def test_a_body_exactly_at_the_cap_is_parsed() -> None:
    response = post(None, raw=b"[" * MAX_BODY_BYTES)

    assert response.status_code == 400
    assert "body" in error_of(response)["message"]


# --- nesting --------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1_000, 10_000, 100_000, MAX_BODY_BYTES // 2 - 1])
@pytest.mark.parametrize(
    ("opener", "closer"), [(b"[", b"]"), (b'{"a":', b"}")], ids=["arrays", "objects"]
)
def test_deeply_nested_json_is_a_400_not_a_recursion_error(
    depth: int, opener: bytes, closer: bytes
) -> None:
    body = (opener * depth + b"1" + closer * depth)[:MAX_BODY_BYTES]

    response = post(None, raw=body)

    assert response.status_code in (400, 413)
    if response.status_code == 400:
        assert "body" in error_of(response)["message"]


@pytest.mark.parametrize("depth", [50, 900, 5_000, 200_000])
def test_nesting_inside_the_id_list_is_named_by_field_or_body(depth: int) -> None:
    body = b'{"IndicatorIds": [' + b"[" * depth + b"1" + b"]" * depth + b"]}"

    response = post(None, raw=body)

    message = error_of(response)["message"]
    assert response.status_code == 400
    assert "IndicatorIds[0]" in message or "body" in message


# --- huge text ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["é" * (MAX_TEXT_FIELD_CHARS + 1), "x" * 900_000], ids=["just over", "huge"]
)
@pytest.mark.parametrize("name", TEXT_FIELDS)
def test_a_huge_string_in_any_text_field_is_refused_naming_the_field(
    stack: LocalStack, tenant: list[dict[str, Any]], name: str, text: str
) -> None:
    response = post({"IndicatorIds": [tenant[0]["id"]], name: text})

    error = error_of(response)
    assert response.status_code == 400
    assert error["message"].startswith(name)
    assert len(response.get_body()) < ERROR_ALLOWANCE_BYTES
    assert nothing_reached_defender(stack)


def test_a_huge_value_is_refused_naming_its_index(
    stack: LocalStack, tenant: list[dict[str, Any]]
) -> None:
    values = ["evil.example", "a" * (MAX_VALUE_CHARS + 1)]

    response = post({"IndicatorValues": values})

    assert response.status_code == 400
    assert "IndicatorValues[1]" in error_of(response)["message"]
    assert nothing_reached_defender(stack)


def test_a_huge_id_string_is_shortened_in_the_answer() -> None:
    response = post({"IndicatorIds": ["1", "9" * 500_000]})

    error = error_of(response)
    assert response.status_code == 400
    assert error["problems"][0]["where"] == "IndicatorIds[1]"
    assert len(response.get_body()) < ERROR_ALLOWANCE_BYTES


# --- many problems --------------------------------------------------------------------


def test_thousands_of_bad_ids_are_capped_and_summarised(
    stack: LocalStack, tenant: list[dict[str, Any]]
) -> None:
    ids = [tenant[0]["id"]] + ["not-an-id"] * 4_999

    response = post({"IndicatorIds": ids})

    error = error_of(response)
    assert response.status_code == 400
    assert len(error["problems"]) == MAX_REPORTED_PROBLEMS
    assert error["message"].startswith("4999 invalid indicator ID(s) in IndicatorIds")
    assert "and 4994 more" in error["message"]
    assert len(response.get_body()) < ERROR_ALLOWANCE_BYTES
    assert nothing_reached_defender(stack)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"IndicatorIds": [None] * 20_000}, id="null IDs"),
        pytest.param(
            {"IndicatorValues": [1] * MAX_VALUES_PER_REQUEST}, id="non-string values"
        ),
        pytest.param(
            {"IndicatorIds": ["1"], **{f"f{i}": 0 for i in range(20_000)}},
            id="unknown fields",
        ),
        pytest.param(
            {"IndicatorIds": ["1"], "n" * 400_000: 0}, id="a huge unknown field name"
        ),
        pytest.param(
            {"IndicatorIds": ["1"], **{"\x00" * i: 0 for i in range(1, 400)}},
            id="unknown field names that do not print",
        ),
    ],
)
def test_an_error_answer_stays_small_whatever_the_request(
    document: dict[str, Any],
) -> None:
    response = post(document)

    error = error_of(response)
    assert response.status_code == 400
    assert len(error.get("problems", [])) <= MAX_REPORTED_PROBLEMS
    assert len(response.get_body()) < ERROR_ALLOWANCE_BYTES


# --- content types --------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/csv",
        "application/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "application/json-patch+json",
        "image/png",
    ],
)
def test_a_body_that_is_not_json_by_its_content_type_gets_415(
    stack: LocalStack, tenant: list[dict[str, Any]], content_type: str
) -> None:
    response = post(
        {"IndicatorIds": [tenant[0]["id"]]}, headers={"Content-Type": content_type}
    )

    error = error_of(response)
    assert response.status_code == 415
    assert error["code"] == "UnsupportedMediaType"
    assert content_type.split(";")[0] in error["message"]
    assert nothing_reached_defender(stack)


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "TEXT/JSON", ""]
)
def test_json_content_types_in_any_spelling_are_parsed(content_type: str) -> None:
    response = post({"IndicatorIds": "1"}, headers={"Content-Type": content_type})

    assert response.status_code == 400
    assert "IndicatorIds" in error_of(response)["message"]


# --- through the local host -----------------------------------------------------------


def invocations_since(start: int) -> list[str]:
    return [
        record.text
        for record in captured_records()[start:]
        if record.logger == "localdev.host" and record.text.startswith("Executing")
    ]


def test_the_host_refuses_a_body_announced_past_its_cap(
    stack: LocalStack, function_url: str, function_key: str
) -> None:
    url = urlsplit(function_url)
    head = (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"{KEY_HEADER}: {function_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {MAX_REQUEST_BODY_BYTES + 1}\r\n\r\n"
    )
    start = len(captured_records())

    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(head.encode() + b'{"IndicatorIds": [')
        status_line = conn.recv(4096).split(b"\r\n", 1)[0]

    assert status_line.split()[1] == b"413"
    assert invocations_since(start) == []


def test_the_host_refuses_a_streamed_body_past_its_cap(
    stack: LocalStack, function_url: str, function_key: str
) -> None:
    chunk = b" " * (1024 * 1024)

    def streamed() -> Iterator[bytes]:
        yield b'{"IndicatorIds": ["1"]}'
        for _ in range(MAX_REQUEST_BODY_BYTES // len(chunk) + 1):
            yield chunk

    start = len(captured_records())

    status: int | None = None
    try:
        response = requests.post(
            function_url,
            data=streamed(),
            headers={KEY_HEADER: function_key, "Content-Type": "application/json"},
            timeout=HTTP_TIMEOUT_S,
        )
        status = response.status_code
    except requests.ConnectionError:
        pass  # the host may answer and close before the last chunk is sent

    assert status in (413, None)
    assert invocations_since(start) == []


def test_a_body_between_the_apps_cap_and_the_hosts_gets_the_apps_413(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    function_url: str,
    function_key: str,
) -> None:
    size = 2 * MAX_BODY_BYTES
    assert size < MAX_REQUEST_BODY_BYTES
    start = len(captured_records())

    response = requests.post(
        function_url,
        data=padded_request(size),
        headers={KEY_HEADER: function_key, "Content-Type": "application/json"},
        timeout=HTTP_TIMEOUT_S,
    )

    assert response.status_code == 413
    assert str(MAX_BODY_BYTES) in response.json()["error"]["message"]
    assert len(invocations_since(start)) == 1
    assert nothing_reached_defender(stack)


def test_a_deeply_nested_body_through_the_host_is_a_400(
    function_url: str, function_key: str
) -> None:
    depth = 200_000

    response = requests.post(
        function_url,
        data=b"[" * depth + b"]" * depth,
        headers={KEY_HEADER: function_key, "Content-Type": "application/json"},
        timeout=HTTP_TIMEOUT_S,
    )

    assert response.status_code == 400
    assert json.loads(response.content)["error"]["code"] == "InvalidRequest"


# --- the shared budget ------------------------------------------------------------
# Last in this module: `isolated_app` changes the app settings until the module
# ends.

API_LIST = "list"
# A call in the budget entity: a 64-bit key and a time, negative while the
# call is in flight (see shared.table_budget).
CALL_RECORD = struct.Struct("<qd")


def calls_in_flight(tenant_id: str, api: str) -> list[int]:
    table = open_state_table(Settings.from_environ())
    with table:
        try:
            entity = table.get_entity(tenant_id.lower(), f"budget-{api}")
        except ResourceNotFoundError:
            return []
    raw = bytes(entity.get("Calls") or b"")
    return [key for key, at in CALL_RECORD.iter_unpack(raw) if at < 0]


def test_a_call_that_fails_before_it_is_sent_gives_its_budget_slot_back(
    isolated_app: IsolatedApp, fresh_service: None
) -> None:
    # Text with no UTF-8 form (a lone surrogate: what a command-line argument
    # that is not UTF-8 becomes) cannot go into a query string, so the List
    # call fails while its request is built, after it took a slot. Left in
    # flight, such slots would stall every List call of the tenant.
    client = get_service().client
    before = calls_in_flight(isolated_app.tenant_id, API_LIST)

    with pytest.raises(UnicodeEncodeError):
        list(client.list_indicators(odata_filter="indicatorValue eq 'evil\udcff'"))

    assert calls_in_flight(isolated_app.tenant_id, API_LIST) == before
