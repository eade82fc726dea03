"""Who may call the functions, which tenant's jobs they see, and what a
request may not choose, all over real HTTP through the local functions host.

- The function key counts only in its two places: the ``x-functions-key``
  header or the ``code`` query parameter. Anywhere else (the body, an
  ``Authorization`` header, a cookie, another header) the call is refused
  with 401 before the function runs: Defender hears nothing, no job exists.
- A job's status URL says nothing to another tenant: 404, exactly as for a
  job that never existed.
- Nothing in a request decides which Defender host the app calls or which
  vault it reads: the configured emulator and Key Vault stand-in are used,
  and a loopback server named in the request hears nothing.

The real function key is only ever sent in headers or bodies here, never in a
query string, where the HTTP client's own debug log would record it.
"""

from __future__ import annotations

import socket
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from azure.data.tables import TableClient

from localdev.stack import LOCAL_TENANT_ID, LocalStack
from shared.jobs import JobStore
from tests.log_capture import captured_records

if TYPE_CHECKING:
    from tests.conftest import CanaryServer

pytestmark = pytest.mark.integration

HTTP_TIMEOUT_S = 60
KEY_HEADER = "x-functions-key"
# Settings, and their usual aliases, that a request might try to override.
OVERRIDE_NAMES = (
    "DEFENDER_API_URL",
    "apiUrl",
    "api_url",
    "KEY_VAULT_URL",
    "keyVaultUrl",
    "AZURE_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT",
)


def emulator_calls(stack: LocalStack) -> list[dict[str, Any]]:
    assert stack.emulator is not None
    return stack.emulator.emulator.calls()


def present_ids(stack: LocalStack) -> set[str]:
    assert stack.emulator is not None
    return {row["id"] for row in stack.emulator.emulator.indicators()}


def jobs_requested_by(table: TableClient, tenant: str, who: str) -> list[str]:
    store = JobStore(table, tenant.lower())
    return [job.id for job in store.find_jobs(limit=500, requested_by=who)]


def without_query(url: str) -> str:
    """The URL without its query string, which may carry the function key."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


# --- the key in the wrong place -------------------------------------------------------

# Each: (request headers, extra body fields, cookies), given the real key.
MISPLACED_KEYS = {
    "no key at all": lambda key: ({}, {}, {}),
    "a wrong key in the header": lambda key: ({KEY_HEADER: key[::-1]}, {}, {}),
    "the key with a character more": lambda key: ({KEY_HEADER: f"{key}x"}, {}, {}),
    "the key in the body as code": lambda key: ({}, {"code": key}, {}),
    "the key in the body as the header name": lambda key: ({}, {KEY_HEADER: key}, {}),
    "the key as a bearer token": lambda key: (
        {"Authorization": f"Bearer {key}"},
        {},
        {},
    ),
    "the key as the Authorization value": lambda key: ({"Authorization": key}, {}, {}),
    "the key in a code cookie": lambda key: ({}, {}, {"code": key}),
    "the key in a cookie named like the header": lambda key: (
        {},
        {},
        {KEY_HEADER: key},
    ),
    "the key in x-function-key": lambda key: ({"x-function-key": key}, {}, {}),
    "the key in x-api-key": lambda key: ({"x-api-key": key}, {}, {}),
    "the key in an APIM subscription header": lambda key: (
        {"Ocp-Apim-Subscription-Key": key},
        {},
        {},
    ),
    "the key in the code header": lambda key: ({"code": key}, {}, {}),
}


@pytest.mark.parametrize("placement", list(MISPLACED_KEYS))
def test_a_key_anywhere_but_its_two_places_is_refused_and_nothing_happens(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    state_table: TableClient,
    function_url: str,
    function_key: str,
    placement: str,
) -> None:
    headers, fields, cookies = MISPLACED_KEYS[placement](function_key)
    marker = f"auth-{uuid.uuid4().hex}"
    wanted = [row["id"] for row in tenant[:3]]
    body = {"IndicatorIds": wanted, "requestedBy": marker, **fields}

    response = requests.post(
        function_url,
        json=body,
        headers=headers,
        cookies=cookies,
        timeout=HTTP_TIMEOUT_S,
    )

    assert response.status_code == 401
    assert response.content == b""
    assert emulator_calls(stack) == []
    assert set(wanted) <= present_ids(stack)
    assert jobs_requested_by(state_table, LOCAL_TENANT_ID, marker) == []


@pytest.mark.parametrize("job_path", ["", "/0123456789abcdef0123456789abcdef"])
def test_reading_jobs_without_the_key_is_refused(
    function_url: str, job_path: str
) -> None:
    response = requests.get(function_url + job_path, timeout=HTTP_TIMEOUT_S)

    assert response.status_code == 401
    assert response.content == b""


def test_a_wrong_code_parameter_is_refused(
    stack: LocalStack, tenant: list[dict[str, Any]], function_url: str
) -> None:
    response = requests.post(
        function_url,
        params={"code": "not-the-key"},
        json={"IndicatorIds": [tenant[0]["id"]]},
        timeout=HTTP_TIMEOUT_S,
    )

    assert response.status_code == 401
    assert emulator_calls(stack) == []


def test_the_key_is_checked_before_a_body_is_read(
    stack: LocalStack, function_url: str
) -> None:
    """A caller without the key cannot make the host wait for 500 MB."""
    url = urlsplit(function_url)
    announced = 500 * 1024 * 1024
    head = (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {announced}\r\n\r\n"
    )

    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(head.encode() + b'{"IndicatorIds": [')
        status_line = conn.recv(4096).split(b"\r\n", 1)[0]

    assert status_line.split()[1] == b"401"


# --- one tenant's job, another tenant's status URL ------------------------------------


def test_a_jobs_status_url_reveals_nothing_to_another_tenant(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    home_app_registered: None,
    other_tenant: str,
    state_table: TableClient,
    function_url: str,
    function_key: str,
) -> None:
    marker = f"home-only-{uuid.uuid4().hex}"
    posted = requests.post(
        function_url,
        json={"IndicatorIds": [tenant[0]["id"]], "requestedBy": marker},
        headers={KEY_HEADER: function_key},
        timeout=HTTP_TIMEOUT_S,
    )
    assert posted.status_code == 200, posted.json().get("error")
    home_job = posted.json()["id"]
    status_url = without_query(posted.json()["statusQueryGetUri"])
    other_marker = f"other-only-{uuid.uuid4().hex}"
    other_job, _ = JobStore(state_table, other_tenant.lower()).create(
        [int(tenant[1]["id"])], requested_by=other_marker, finished=True
    )
    never = uuid.uuid4().hex

    def status(job_id: str, tenant_id: str | None = None) -> requests.Response:
        params = {"tenantId": tenant_id} if tenant_id else {}
        return requests.get(
            f"{function_url}/{job_id}",
            params=params,
            headers={KEY_HEADER: function_key},
            timeout=HTTP_TIMEOUT_S,
        )

    home_from_other = status(home_job, other_tenant)
    other_from_home = status(other_job.id)
    unknown = status(never, other_tenant)

    assert status_url.endswith(f"/{home_job}")
    assert status(home_job).status_code == 200
    assert status(other_job.id, other_tenant).status_code == 200
    for answer, job_id in (
        (home_from_other, home_job),
        (other_from_home, other_job.id),
    ):
        assert answer.status_code == 404
        assert marker not in answer.text and other_marker not in answer.text
        assert set(answer.json()) == {"error"}
        assert answer.text.replace(job_id, never) == unknown.text


def test_another_tenants_job_list_holds_none_of_ours(
    stack: LocalStack,
    other_tenant: str,
    state_table: TableClient,
    function_url: str,
    function_key: str,
) -> None:
    ours, _ = JobStore(state_table, LOCAL_TENANT_ID.lower()).create(
        [1], requested_by="list-check", finished=True
    )
    theirs, _ = JobStore(state_table, other_tenant.lower()).create(
        [2], requested_by="list-check", finished=True
    )

    def listed(tenant_id: str | None) -> set[str]:
        params = {"requestedBy": "list-check"}
        if tenant_id:
            params["tenantId"] = tenant_id
        response = requests.get(
            function_url, params=params, headers={KEY_HEADER: function_key}, timeout=60
        )
        assert response.status_code == 200
        return {job["id"] for job in response.json()["jobs"]}

    assert ours.id in listed(None) and theirs.id not in listed(None)
    assert theirs.id in listed(other_tenant) and ours.id not in listed(other_tenant)


def test_a_tenant_the_app_does_not_serve_is_refused_without_details(
    stack: LocalStack, state_table: TableClient, function_url: str, function_key: str
) -> None:
    job, _ = JobStore(state_table, LOCAL_TENANT_ID.lower()).create(
        [3], requested_by="not-for-strangers", finished=True
    )

    response = requests.get(
        f"{function_url}/{job.id}",
        params={"tenantId": str(uuid.uuid4())},
        headers={KEY_HEADER: function_key},
        timeout=HTTP_TIMEOUT_S,
    )

    assert response.status_code == 403
    assert "not-for-strangers" not in response.text
    assert set(response.json()) == {"error"}


# --- what a request may not choose ----------------------------------------------------


def forged_routing(canary: CanaryServer) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and query parameters that each name the canary."""
    headers = {
        "X-Forwarded-Host": canary.netloc,
        "X-Forwarded-Proto": "http",
        "Forwarded": f"host={canary.netloc};proto=http",
        "X-Original-URL": canary.url,
        "X-Original-Host": canary.netloc,
    }
    params = dict.fromkeys(OVERRIDE_NAMES, canary.url)
    return headers, params


def test_nothing_in_a_request_chooses_the_defender_host_or_the_vault(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    home_app_registered: None,
    fresh_service: None,
    canary_server: CanaryServer,
    function_url: str,
    function_key: str,
) -> None:
    headers, params = forged_routing(canary_server)
    wanted = tenant[0]["id"]
    start = len(captured_records())

    response = requests.post(
        function_url,
        params=params,
        json={"IndicatorIds": [wanted], "requestedBy": canary_server.url},
        headers={**headers, "Host": canary_server.netloc, KEY_HEADER: function_key},
        timeout=HTTP_TIMEOUT_S,
    )

    assert response.status_code == 200, response.json().get("error")
    assert response.json()["output"]["counts"]["deleted"] == 1
    assert wanted not in present_ids(stack)
    calls = emulator_calls(stack)
    assert [c["path"] for c in calls] == ["/api/indicators/BatchDelete"]
    vault_reads = [
        record
        for record in captured_records()[start:]
        if record.logger == "localdev.keyvault" and "GET /secrets/" in record.text
    ]
    assert vault_reads, "the secret should have been read from the configured vault"
    assert canary_server.received == []


@pytest.mark.parametrize("name", OVERRIDE_NAMES)
def test_a_body_naming_a_host_or_vault_is_refused_naming_the_field(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    canary_server: CanaryServer,
    function_url: str,
    function_key: str,
    name: str,
) -> None:
    body = {"IndicatorIds": [tenant[0]["id"]], name: canary_server.url}

    response = requests.post(
        function_url,
        json=body,
        headers={KEY_HEADER: function_key},
        timeout=HTTP_TIMEOUT_S,
    )

    assert response.status_code == 400
    assert name in response.json()["error"]["message"]
    assert emulator_calls(stack) == []
    assert canary_server.received == []


@pytest.mark.parametrize(
    "tenant_id", ["{url}", "{netloc}", "127.0.0.1", "localhost", "../{netloc}"]
)
def test_a_tenant_naming_a_host_is_refused_before_any_sign_in(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    canary_server: CanaryServer,
    function_url: str,
    function_key: str,
    tenant_id: str,
) -> None:
    named = tenant_id.format(url=canary_server.url, netloc=canary_server.netloc)

    response = requests.post(
        function_url,
        json={"IndicatorIds": [tenant[0]["id"]], "tenantId": named},
        headers={KEY_HEADER: function_key},
        timeout=HTTP_TIMEOUT_S,
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "TenantNotAllowed"
    assert emulator_calls(stack) == []
    assert canary_server.received == []


# --- where the status URL leads -----------------------------------------------------
#
# The status URL carries the function key as ?code=, so whoever it leads to
# gets the key. The app builds it on its own address: PUBLIC_BASE_URL, else
# WEBSITE_HOSTNAME, which App Service sets in Azure and Core Tools sets on a
# workstation. The local host sets neither, so these tests set them as the
# platform would.

MAX_POLLS = 10
ADDRESS_SETTINGS = ("PUBLIC_BASE_URL", "WEBSITE_HOSTNAME")


def start_slow_job(
    monkeypatch: pytest.MonkeyPatch,
    function_url: str,
    function_key: str,
    indicator_id: str,
    host: str,
) -> requests.Response:
    """POST with a forged Host header and no synchronous wait, so the answer
    is a 202 carrying both Location and statusQueryGetUri."""
    monkeypatch.setenv("SYNC_WAIT_SECONDS", "0")
    response = requests.post(
        function_url,
        json={"IndicatorIds": [indicator_id]},
        headers={"Host": host, KEY_HEADER: function_key},
        timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == 202, response.text
    return response


def poll_until_done(status_url: str, function_key: str) -> requests.Response:
    """GET the status URL (its key sent as a header) until the job is done."""
    for _ in range(MAX_POLLS):
        polled = requests.get(
            without_query(status_url),
            headers={KEY_HEADER: function_key},
            timeout=HTTP_TIMEOUT_S,
        )
        if polled.status_code != 202:
            return polled
    raise AssertionError(f"the job was not done after {MAX_POLLS} polls")


@pytest.fixture
def no_own_address(
    monkeypatch: pytest.MonkeyPatch, stack: LocalStack, home_app_registered: None
) -> pytest.MonkeyPatch:
    """The app with neither address setting: it knows no address of its own."""
    for name in ADDRESS_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("setting", ADDRESS_SETTINGS)
def test_the_status_url_stays_on_the_host_the_caller_reached(
    no_own_address: pytest.MonkeyPatch,
    tenant: list[dict[str, Any]],
    canary_server: CanaryServer,
    function_url: str,
    function_key: str,
    setting: str,
) -> None:
    monkeypatch = no_own_address
    reached = urlsplit(function_url)
    own_address = {
        "PUBLIC_BASE_URL": f"{reached.scheme}://{reached.netloc}",
        "WEBSITE_HOSTNAME": reached.netloc,
    }
    monkeypatch.setenv(setting, own_address[setting])

    response = start_slow_job(
        monkeypatch, function_url, function_key, tenant[0]["id"], canary_server.netloc
    )

    status_url = response.json()["statusQueryGetUri"]
    assert response.headers["Location"] == status_url
    assert without_query(status_url) == f"{function_url}/{response.json()['id']}"
    assert poll_until_done(status_url, function_key).status_code == 200
    assert canary_server.received == []


def test_an_app_without_an_address_of_its_own_answers_a_relative_status_url(
    no_own_address: pytest.MonkeyPatch,
    tenant: list[dict[str, Any]],
    function_url: str,
    function_key: str,
) -> None:
    monkeypatch = no_own_address

    response = start_slow_job(
        monkeypatch, function_url, function_key, tenant[0]["id"], "evil.example"
    )

    status_url = response.json()["statusQueryGetUri"]
    parts = urlsplit(status_url)
    assert response.headers["Location"] == status_url
    assert (parts.scheme, parts.netloc) == ("", "")
    assert parts.path == f"{urlsplit(function_url).path}/{response.json()['id']}"
    followed = urljoin(function_url, status_url)
    assert poll_until_done(followed, function_key).status_code == 200


def test_in_local_development_a_loopback_host_gives_the_status_urls_host(
    no_own_address: pytest.MonkeyPatch,
    tenant: list[dict[str, Any]],
    function_url: str,
    function_key: str,
) -> None:
    monkeypatch = no_own_address
    reached = urlsplit(function_url).netloc

    response = start_slow_job(
        monkeypatch, function_url, function_key, tenant[0]["id"], reached
    )

    status_url = response.json()["statusQueryGetUri"]
    assert without_query(status_url) == f"{function_url}/{response.json()['id']}"
    assert poll_until_done(status_url, function_key).status_code == 200
