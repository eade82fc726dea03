"""Fuzzing the HTTP function: whatever arrives, the answer is a clean 2xx/4xx.

Generated requests (10,000 per run, derandomized so that CI tries the same
ones every time) go through `BatchDeleteHttp.main` as real
`azure.functions.HttpRequest` objects, against Azurite and the Defender
emulator, in an isolated tenant whose daily cap is used up: a valid delete is
refused before any job exists, so the only work done is dry runs, value
look-ups and reads of job state.

For every answer:

- no exception leaves `main`, and the status is never 5xx;
- a 4xx carries ``{"error": {"code", "message"}}`` with a non-empty message,
  and a 400's message names what was wrong (a field, an index, a query
  parameter, or the body);
- no body holds a traceback, a source location or file path, the repr or
  message of a Python exception, or the value of a sensitive app setting,
  unless the request itself carried that text.

Weaknesses these runs found, now fixed, are kept in `FIXED_WEAKNESSES`,
each with the smallest call that showed it, which must get a clean 400
naming what was wrong.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import azure.functions as func
import pytest
from azure.data.tables import TableClient
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import BatchDeleteHttp
from emulator.auth import ROLE_ALL
from localdev.stack import LOCAL_TENANT_ID, REPO_ROOT, LocalStack
from shared.defender import MAX_WAIT_S
from shared.handlers import JOB_FILTERS
from shared.http_api import (
    INDICATOR_TYPES,
    MAX_BODY_BYTES,
    MAX_TEXT_FIELD_CHARS,
    REQUEST_FIELDS,
)
from shared.jobs import JobStatus

if TYPE_CHECKING:
    from tests.conftest import IsolatedApp

# Ten thousand generated requests take about two minutes on an idle machine;
# the timeout leaves room for a busy CI runner.
FUZZ_TIMEOUT_S = 900
pytestmark = [pytest.mark.integration, pytest.mark.timeout(FUZZ_TIMEOUT_S)]

BASE_URL = "https://fuzz.example/api/indicators/batch-delete"

BODY_EXAMPLES = 5_500
SHAPE_EXAMPLES = 3_000
LISTING_EXAMPLES = 1_500
FUZZED_INPUTS = BODY_EXAMPLES + SHAPE_EXAMPLES + LISTING_EXAMPLES

FUZZ_SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)

# App settings whose values no answer may show. Limits, schedules and flags
# are left out: they are short, public, and occur by chance in other text.
SENSITIVE_SETTINGS = (
    "AzureWebJobsStorage",
    "AZURE_AUTHORITY_HOST",
    "DEFENDER_API_URL",
    "DEFENDER_CLIENT_ID",
    "DEFENDER_CLIENT_SECRET",
    "DEFENDER_CLIENT_SECRET_NAME",
    "DEFENDER_TENANT_ID",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "KEY_VAULT_URL",
    "REQUESTS_CA_BUNDLE",
)
MIN_SECRET_CHARS = 8
LEAK_PATTERNS = {
    "a traceback": re.compile(r"Traceback \(most recent call last\)"),
    "a source location": re.compile(r"File \"|\w\.py\b|line \d+, in "),
    "a file path": re.compile(r"(?<![\w:/.])/(?:usr|home|tmp|opt|var|work|etc)/"),
    "an exception repr": re.compile(
        r"\b[A-Z]\w*(?:Error|Exception|Exhausted|Unavailable)\(|<class '|"
        r" object at 0x[0-9a-f]+"
    ),
    "a Python error message": re.compile(
        r"codec can't (?:en|de)code|surrogates not allowed|invalid literal for|"
        r"object has no attribute|unsupported operand|not subscriptable|"
        r"positional argument"
    ),
}
# What a 400 may name to say where the problem is.
NAMED_PLACES = (*REQUEST_FIELDS, *JOB_FILTERS, "body", "query parameter")
INDEX = re.compile(r"\[\d+\]")
# Python refuses to turn longer digit strings into an int (CVE-2020-10735).
INT_MAX_STR_DIGITS = 4_300


# --- the answer's invariants ----------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request to the HTTP function."""

    method: str
    body: bytes
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    job_id: str | None = None

    def request(self) -> func.HttpRequest:
        url = BASE_URL + (f"/{quote(self.job_id, safe='')}" if self.job_id else "")
        headers = dict(self.headers)
        if self.content_type is not None:
            headers["Content-Type"] = self.content_type
        return func.HttpRequest(
            self.method,
            url,
            headers=headers,
            params=dict(self.params),
            route_params={"jobId": self.job_id} if self.job_id is not None else {},
            body=self.body,
        )

    def summary(self) -> str:
        """The call in a few hundred characters, for failure reports."""
        body = self.body[:300] + (b"..." if len(self.body) > 300 else b"")
        parts = (self.method, self.job_id, self.content_type, self.params, body)
        headers = {k: v[:100] for k, v in self.headers.items()}
        return " ".join(str(part) for part in parts) + f" headers={headers}"

    def document(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None

    def sent_text(self) -> str:
        """Everything the caller sent, to tell an echo from a leak."""
        document = self.document()
        return "\n".join(
            [
                self.method,
                self.body.decode("utf-8", "replace"),
                json.dumps(document, ensure_ascii=False) if document else "",
                str(self.content_type),
                str(self.job_id),
                *self.headers,
                *self.headers.values(),
                *self.params,
                *self.params.values(),
            ]
        )


class Violation(AssertionError):
    """An answer that breaks an invariant; `kind` says which."""

    def __init__(self, kind: str, detail: str, status: int | None = None) -> None:
        super().__init__(f"{kind}: {detail[:600]}")
        self.kind = kind
        self.detail = detail
        self.status = status


@dataclass
class Secrets:
    """Values no answer may contain, by what they are."""

    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, stack: LocalStack, environ: Mapping[str, str]) -> Secrets:
        found = {name: environ.get(name, "") for name in SENSITIVE_SETTINGS}
        found["the client secret"] = stack.client_secret
        for part in environ.get("AzureWebJobsStorage", "").split(";"):
            name, _, value = part.partition("=")
            if name == "AccountKey":
                found["the storage account key"] = value
        found["the repository's location"] = str(REPO_ROOT)
        return cls({k: v for k, v in found.items() if len(v) >= MIN_SECRET_CHARS})


def answer(call: Call, secrets: Secrets) -> int:
    """Call `main` and check every invariant; raises Violation."""
    status, _ = answered(call, secrets)
    return status


def answered(call: Call, secrets: Secrets) -> tuple[int, Any]:
    """`answer`, with the answer's JSON body as well."""
    try:
        response = BatchDeleteHttp.main(call.request())
    except Exception as exc:
        raise Violation("escaped", f"{type(exc).__name__}: {exc}") from exc
    status = response.status_code
    text = response.get_body().decode("utf-8")
    if status >= 500:
        raise Violation("server error", f"{status} {text}", status)
    try:
        document = json.loads(text)
    except ValueError:
        raise Violation("not JSON", text, status) from None
    if status >= 400:
        _check_error(status, document)
    _check_no_leak(status, text, call, secrets)
    return status, document


def _check_error(status: int, document: Any) -> None:
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        raise Violation("no error object", json.dumps(document), status)
    code, message = error.get("code"), error.get("message")
    if not (isinstance(code, str) and code and isinstance(message, str)):
        raise Violation("no code or message", json.dumps(error), status)
    if not message.strip():
        raise Violation("empty message", json.dumps(error), status)
    if status == 400 and not _names_a_place(message, error.get("problems") or []):
        raise Violation("400 names nothing", message, status)


def _names_a_place(message: str, problems: list[dict[str, str]]) -> bool:
    if INDEX.search(message) or any(place in message for place in NAMED_PLACES):
        return True
    where = problems[0]["where"] if problems else ""
    return where.strip() != "" and where.isprintable() and where in message


def _check_no_leak(status: int, text: str, call: Call, secrets: Secrets) -> None:
    suspects = [
        (what, match.group())
        for what, pattern in LEAK_PATTERNS.items()
        for match in pattern.finditer(text)
    ]
    suspects += [(what, value) for what, value in secrets.values.items()]
    suspects = [(what, found) for what, found in suspects if found in text]
    if not suspects:
        return
    sent = call.sent_text()
    for what, found in suspects:
        if found not in sent:
            raise Violation(f"shows {what}", text, status)


# --- fixed weaknesses -----------------------------------------------------------------


# Stored by dry runs before the listings are fuzzed, so that listings render
# jobs holding them.
ODD_TEXTS = ("\x00\x1b[31m", "' or 1 eq 1", "\u202eevil", "é" * 1_000)


def _dry_run(**fields: Any) -> bytes:
    return json.dumps({"IndicatorIds": ["40050"], "dryRun": True, **fields}).encode()


# An error answer repeats at most a short excerpt of what was sent.
SMALL_ANSWER_CHARS = 2_000


@dataclass(frozen=True)
class FixedWeakness:
    """A weakness these runs found and the product fixed: its reproduction
    now gets a clean 400 that names `place`."""

    name: str
    reproduction: Call
    place: str


FIXED_WEAKNESSES = (
    FixedWeakness(
        "unknown-field-names-unquoted",
        Call("POST", b'{"": 1, "IndicatorIds": ["1"]}'),
        "''",
    ),
    FixedWeakness(
        "json-integer-past-int-max-str-digits",
        Call(
            "POST",
            b'{"IndicatorIds": [' + b"7" * (INT_MAX_STR_DIGITS + 700) + b"]}",
        ),
        "body",
    ),
    FixedWeakness(
        "top-with-non-ascii-digits", Call("GET", b"", params={"top": "²"}), "top"
    ),
    FixedWeakness(
        "since-out-of-datetime-range",
        Call("GET", b"", params={"since": "0001-01-01T00:00:00+01:00"}),
        "since",
    ),
    FixedWeakness(
        "since-past-the-last-datetime",
        Call("GET", b"", params={"since": "9999-12-31T23:59:59-01:00"}),
        "since",
    ),
    FixedWeakness(
        "lone-surrogate-request-id",
        Call("POST", b'{"IndicatorIds": ["1"], "requestId": "\\ud800"}'),
        "requestId",
    ),
    FixedWeakness(
        "lone-surrogate-reason",
        Call("POST", b'{"IndicatorIds": ["1"], "reason": "a\\udfffb"}'),
        "reason",
    ),
    FixedWeakness(
        "lone-surrogate-value-message",
        Call("POST", b'{"IndicatorValues": ["\\ud800"], "dryRun": true}'),
        "IndicatorValues[0]",
    ),
    FixedWeakness(
        "idempotency-key-too-long-to-store",
        Call("POST", _dry_run(), headers={"Idempotency-Key": "k" * 40_000}),
        "Idempotency-Key",
    ),
)


# --- strategies -----------------------------------------------------------------------

ANY_TEXT = st.text(max_size=30)
# Lone surrogates reach the app through JSON escapes such as "\ud800".
JSON_TEXT = st.text(st.characters(exclude_categories=[]), max_size=30) | st.text(
    st.sampled_from(["\ud800", "\udfff", "\x00", "\u202e", "a", "\u00e9", " "]),
    max_size=6,
)
UNICODE_DIGITS = st.text(
    alphabet=st.characters(categories=["Nd", "No"]), min_size=1, max_size=6
)


def long_text(low: int, high: int) -> st.SearchStrategy[str]:
    """Text of `low`..`high` characters, cheap to generate: a repeated seed."""
    seeds = st.text(min_size=1, max_size=8)
    return st.tuples(seeds, st.integers(low, high)).map(
        lambda pair: (pair[0] * (pair[1] // len(pair[0]) + 1))[: pair[1]]
    )


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | JSON_TEXT
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(JSON_TEXT, inner, max_size=4)
    ),
    max_leaves=8,
)
VALID_IDS = st.integers(min_value=1, max_value=2**63 - 1)
ID_ENTRIES = st.one_of(
    VALID_IDS,
    VALID_IDS.map(str),
    VALID_IDS.map(lambda i: f"  {i} "),
    VALID_IDS.map(lambda i: f"000{i}"),
    st.integers(max_value=0),
    st.integers(min_value=2**63),
    UNICODE_DIGITS,
    st.just("9" * 30),
    JSON_SCALARS,
    JSON_VALUES,
)
ID_LISTS = st.one_of(
    st.lists(VALID_IDS | VALID_IDS.map(str), min_size=1, max_size=5),
    st.lists(ID_ENTRIES, max_size=10),
    st.integers(60, 5_000).map(lambda n: ["x"] * n),
    JSON_VALUES,
)
VALUE_LISTS = st.one_of(
    st.lists(JSON_TEXT.filter(str.strip), min_size=1, max_size=6),
    st.lists(st.sampled_from(["203.0.113.7", "evil.example", "a" * 64]), max_size=3),
    st.lists(long_text(2_040, 2_060), min_size=1, max_size=2),
    st.integers(5_000, 5_010).map(lambda n: ["v"] * n),
    JSON_VALUES,
)
TEXT_VALUES = st.one_of(
    JSON_TEXT,
    long_text(MAX_TEXT_FIELD_CHARS - 5, MAX_TEXT_FIELD_CHARS + 5),
    long_text(10_000, 200_000),
    JSON_SCALARS,
    JSON_VALUES,
)
DELETE_REQUESTS = st.fixed_dictionaries(
    {},
    optional={
        "IndicatorIds": ID_LISTS,
        "IndicatorValues": VALUE_LISTS,
        "dryRun": st.booleans() | JSON_SCALARS,
        "indicatorType": st.sampled_from(INDICATOR_TYPES) | JSON_TEXT,
        "reason": TEXT_VALUES,
        "requestedBy": TEXT_VALUES,
        "requestId": TEXT_VALUES,
        "incidentId": TEXT_VALUES,
        "incidentUrl": TEXT_VALUES,
        "tenantId": st.sampled_from([LOCAL_TENANT_ID, "contoso.example"]) | JSON_TEXT,
        "indicatorIds": ID_LISTS,
        "DEFENDER_API_URL": st.just("http://127.0.0.1:9/"),
    },
)


@st.composite
def valid_documents(draw: st.DrawFn, tenant_id: str) -> dict[str, Any]:
    """Requests the app accepts, with odd but allowed text in every field."""
    if draw(st.booleans()):
        target = {
            "IndicatorIds": draw(
                st.lists(VALID_IDS | VALID_IDS.map(str), min_size=1, max_size=4)
            )
        }
    else:
        target = {
            "IndicatorValues": draw(
                st.lists(JSON_TEXT.filter(str.strip), min_size=1, max_size=3)
            )
        }
        if draw(st.booleans()):
            target["indicatorType"] = draw(st.sampled_from(INDICATOR_TYPES))
    extra = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "dryRun": st.booleans(),
                "reason": JSON_TEXT,
                "requestedBy": JSON_TEXT,
                "requestId": JSON_TEXT,
                "incidentId": JSON_TEXT,
                "incidentUrl": JSON_TEXT,
                "tenantId": st.sampled_from([tenant_id, tenant_id.upper()]),
            },
        )
    )
    return {**target, **extra}


@st.composite
def near_valid_documents(draw: st.DrawFn, tenant_id: str) -> dict[str, Any]:
    """Delete requests with some fields right, some wrong, some unknown."""
    document = draw(DELETE_REQUESTS)
    if "tenantId" in document and draw(st.booleans()):
        document["tenantId"] = draw(
            st.sampled_from([tenant_id, tenant_id.upper(), f" {tenant_id} "])
        )
    if draw(st.integers(0, 3)) == 0:
        document.update(draw(st.dictionaries(JSON_TEXT, JSON_VALUES, max_size=2)))
    return document


def nested(depth: int, opener: bytes, closer: bytes) -> bytes:
    return opener * depth + b"1" + closer * depth


RAW_BODIES = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"",
            b" ",
            b"\n\t ",
            b"null",
            b"0",
            b"[]",
            b"{}",
            b'""',
            b"\xef\xbb\xbf{}",
            b"[" + b"1," * (MAX_BODY_BYTES // 2) + b"1]",
            b'{"IndicatorIds": [1e400, -1e400, NaN, Infinity, -0, 1E2, 0.0]}',
            b'{"IndicatorIds": ["\\ud800"], "reason": "\\udfff"}',
            b'{"IndicatorIds": ["1"], "IndicatorIds": "again"}',
            b'{"IndicatorIds": ["1",]}',
            b"{'IndicatorIds': ['1']}",
            b'{"IndicatorIds": ["1"]} trailing',
            b'{"IndicatorIds": ["\x00"]}',
            b'{"IndicatorIds": [1]}\x00',
            b"\xff\xfe{\x00}\x00",
            b"\xfe\xff\x00{\x00}",
        ]
    ),
    st.integers(1, 600_000).map(lambda n: nested(n, b"[", b"]")),
    st.integers(1, 200_000).map(lambda n: nested(n, b'{"a":', b"}")),
    st.integers(1, 3_000).map(
        lambda n: b'{"IndicatorIds": ' + nested(n, b"[", b"]") + b"}"
    ),
    st.integers(300, 20_000).map(lambda n: b'{"IndicatorIds": [' + b"7" * n + b"]}"),
)
JSON_CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON;CHARSET=LATIN1",
        "text/json",
        "",
        " application/json ; x=y",
    ]
)
OTHER_CONTENT_TYPES = st.sampled_from(
    [
        ";",
        "application/problem+json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=----x",
        "application/xml",
    ]
) | st.text(max_size=30)


@st.composite
def content_types(draw: st.DrawFn) -> str | None:
    """Mostly types the app accepts, so that bodies get parsed."""
    other = draw(st.integers(0, 4)) == 0
    return draw(OTHER_CONTENT_TYPES if other else JSON_CONTENT_TYPES)


CONTENT_TYPES = content_types()


@st.composite
def post_bodies(draw: st.DrawFn, tenant_id: str) -> bytes:
    kinds = ["near-valid", "near-valid", "valid", "json", "raw", "utf"]
    kind = draw(st.sampled_from(kinds))
    if kind == "raw":
        return draw(RAW_BODIES)
    if kind == "json":
        document = draw(JSON_VALUES)
    elif kind == "valid":
        document = draw(valid_documents(tenant_id))
    else:
        document = draw(near_valid_documents(tenant_id))
    ascii_only = draw(st.booleans())
    indent = draw(st.none() | st.integers(0, 2))
    text = json.dumps(document, ensure_ascii=ascii_only, indent=indent)
    if kind == "utf":
        encoding = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32"]))
        return text.encode(encoding, "surrogatepass")
    return text.encode("utf-8", "surrogatepass")


HEADER_NAMES = st.sampled_from(
    [
        "Idempotency-Key",
        "x-functions-key",
        "Authorization",
        "Host",
        "X-Forwarded-Host",
        "X-Forwarded-Proto",
        "x-ms-client-principal-name",
        "x-ms-client-principal-id",
        "x-ms-client-principal-idp",
        "Cookie",
        "Content-Length",
        "Transfer-Encoding",
    ]
) | st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1)
HEADER_VALUES = st.one_of(ANY_TEXT, long_text(900, 1_100), long_text(30_000, 70_000))
METHODS = st.sampled_from(
    ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "get", "pOsT"]
) | st.text(st.characters(categories=["Lu", "Ll"]), min_size=1, max_size=8)
JOB_IDS = st.one_of(
    st.none(),
    st.just(""),
    st.text("0123456789abcdef", min_size=32, max_size=32),
    st.text("0123456789ABCDEF", min_size=32, max_size=32),
    st.sampled_from(["..", "../..", "%2e%2e", "00000000-0000-0000-0000-000000000000"]),
    ANY_TEXT,
    long_text(200, 3_000),
)
PARAM_NAMES = st.sampled_from([*JOB_FILTERS, "code", "$filter", "jobId"]) | ANY_TEXT
PARAMS = st.dictionaries(PARAM_NAMES, ANY_TEXT, max_size=4)


def _offset_zones() -> st.SearchStrategy[dt.tzinfo | None]:
    minutes = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1)
    return st.none() | minutes.map(lambda m: dt.timezone(dt.timedelta(minutes=m)))


SINCE_VALUES = st.one_of(
    st.datetimes(timezones=_offset_zones()).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2026-02-30T00:00:00Z",
            "2026-01-01",
            "yesterday",
        ]
    ),
    ANY_TEXT,
)
TOP_VALUES = st.one_of(
    st.integers(min_value=-5, max_value=600).map(str),
    UNICODE_DIGITS,
    st.sampled_from(["²", "١٢", "0x10", "1e2", " 5", "5 ", "+5", "9" * 50]),
    ANY_TEXT,
)
STATUS_VALUES = st.sampled_from([s.value for s in JobStatus]) | ANY_TEXT


@st.composite
def listing_params(draw: st.DrawFn, tenant_id: str) -> dict[str, str]:
    tenants = st.sampled_from([tenant_id, tenant_id.upper()]) | ANY_TEXT
    chosen = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "status": STATUS_VALUES,
                "since": SINCE_VALUES,
                "top": TOP_VALUES,
                "requestedBy": ANY_TEXT | st.just("' or RowKey ne '"),
                "tenantId": tenants,
                "code": ANY_TEXT,
            },
        )
    )
    return dict(chosen)


# --- the runs -------------------------------------------------------------------------


@dataclass
class Tally:
    """How the inputs of one run were answered."""

    name: str
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def inputs(self) -> int:
        return sum(self.statuses.values())


@pytest.fixture(scope="module")
def app_secrets(
    stack: LocalStack,
    isolated_app: IsolatedApp,
    small_emulated_tenant: list[dict[str, Any]],
) -> Secrets:
    return Secrets.of(stack, os.environ)


@pytest.fixture(scope="module")
def tallies() -> Iterator[list[Tally]]:
    found: list[Tally] = []
    yield found
    print()
    for tally in found:
        print(f"{tally.name}: {tally.inputs} inputs, {dict(tally.statuses)}")
    print(f"fuzzed inputs in all: {sum(t.inputs for t in found)}")


def fuzz(
    name: str,
    calls: st.SearchStrategy[Call],
    examples: int,
    secrets: Secrets,
    tallies: list[Tally],
) -> Tally:
    """Try `examples` generated calls; raises on any violation."""
    tally = Tally(name)
    tallies.append(tally)

    @settings(FUZZ_SETTINGS, max_examples=examples)
    @given(calls)
    def run(call: Call) -> None:
        note(call.summary())
        tally.statuses[answer(call, secrets)] += 1

    run()
    assert tally.inputs >= examples
    return tally


def test_any_job_listing_filter_gets_a_clean_answer(
    isolated_app: IsolatedApp, app_secrets: Secrets, tallies: list[Tally]
) -> None:
    for text in ODD_TEXTS:
        odd = {"requestedBy": text, "reason": text, "incidentId": text}
        answer(Call("POST", _dry_run(**odd)), app_secrets)
    calls = st.builds(
        Call,
        method=st.just("GET"),
        body=st.just(b""),
        params=listing_params(isolated_app.tenant_id),
    )

    tally = fuzz("job listings", calls, LISTING_EXAMPLES, app_secrets, tallies)

    assert tally.statuses[200] > 0 and tally.statuses[400] > 0


def test_any_method_route_header_and_query_gets_a_clean_answer(
    isolated_app: IsolatedApp, app_secrets: Secrets, tallies: list[Tally]
) -> None:
    calls = st.builds(
        Call,
        method=METHODS,
        body=st.just(b"") | post_bodies(isolated_app.tenant_id),
        content_type=CONTENT_TYPES,
        headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=4),
        params=PARAMS,
        job_id=JOB_IDS,
    )

    tally = fuzz("request shapes", calls, SHAPE_EXAMPLES, app_secrets, tallies)

    assert tally.statuses[404] > 0 and tally.statuses[405] > 0


def test_any_post_body_gets_a_clean_answer(
    isolated_app: IsolatedApp, app_secrets: Secrets, tallies: list[Tally]
) -> None:
    calls = st.builds(
        Call,
        method=st.just("POST"),
        body=post_bodies(isolated_app.tenant_id),
        content_type=CONTENT_TYPES,
    )

    tally = fuzz("POST bodies", calls, BODY_EXAMPLES, app_secrets, tallies)

    assert tally.statuses[400] > BODY_EXAMPLES // 3
    assert tally.statuses[200] > 0 and tally.statuses[413] > 0


def test_the_fuzz_runs_try_at_least_ten_thousand_inputs() -> None:
    assert FUZZED_INPUTS >= 10_000


@pytest.mark.parametrize("fixed", FIXED_WEAKNESSES, ids=lambda f: f.name)
def test_a_fixed_weakness_gets_a_400_naming_the_bad_part(
    isolated_app: IsolatedApp, app_secrets: Secrets, fixed: FixedWeakness
) -> None:
    status, document = answered(fixed.reproduction, app_secrets)

    error = document["error"]
    assert status == 400, error
    assert fixed.place in error["message"], error
    assert len(json.dumps(document)) < SMALL_ANSWER_CHARS


# Each upstream failure, and what the answer must say failed.
UPSTREAM_FAILURES = {
    "the vault refuses the identity": "Key Vault",
    "Defender refuses the token": "Defender refused",
}
# Longer than the Defender client waits for a Retry-After, so a single 429
# ends the call.
THROTTLED_S = int(MAX_WAIT_S) + 100


@pytest.mark.parametrize("failure", list(UPSTREAM_FAILURES))
def test_an_upstream_failure_is_answered_without_setting_values(
    stack: LocalStack,
    isolated_app: IsolatedApp,
    app_secrets: Secrets,
    fresh_service: None,
    failure: str,
) -> None:
    assert stack.identity is not None
    call = Call("POST", _dry_run())
    tenant, client = isolated_app.tenant_id, isolated_app.client_id
    secret = isolated_app.client_secret
    if failure == "the vault refuses the identity":
        stack.identity.revoke_vault_access()
    else:
        stack.identity.register_app(tenant, client, [secret], [])
    try:
        response = BatchDeleteHttp.main(call.request())
    finally:
        stack.identity.grant_vault_access()
        stack.identity.register_app(tenant, client, [secret], [ROLE_ALL])

    text = response.get_body().decode()
    assert response.status_code == 502, text
    _check_error(response.status_code, json.loads(text))
    _check_no_leak(response.status_code, text, call, app_secrets)
    message = json.loads(text)["error"]["message"]
    assert UPSTREAM_FAILURES[failure] in message and "retry" in message


def test_defender_still_throttling_is_answered_429_with_its_retry_after(
    stack: LocalStack,
    isolated_app: IsolatedApp,
    app_secrets: Secrets,
    fresh_service: None,
    state_table: TableClient,
) -> None:
    assert stack.emulator is not None
    emulator = stack.emulator.emulator
    call = Call("POST", _dry_run())
    faults_before = emulator.set_faults()
    emulator.set_faults(force_429=1, retry_after_s=THROTTLED_S)
    try:
        response = BatchDeleteHttp.main(call.request())
    finally:
        emulator.configure(faults=faults_before)
        # The 429 made every caller of the tenant wait; later tests need not.
        state_table.delete_entity(isolated_app.tenant_id.lower(), "budget-list")

    text = response.get_body().decode()
    assert response.status_code == 429, text
    assert response.headers["Retry-After"] == str(THROTTLED_S)
    _check_error(response.status_code, json.loads(text))
    _check_no_leak(response.status_code, text, call, app_secrets)
    error = json.loads(text)["error"]
    assert error["code"] == "UpstreamThrottled"
    assert "Defender" in error["message"]
