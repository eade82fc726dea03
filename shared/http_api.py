"""The HTTP API, independent of the Functions runtime.

`parse_delete_request` turns a caller's raw request into a validated
`DeleteRequest` or a `RequestError` that says what is wrong and where. The
body is Defender's own (`{"IndicatorIds": [...]}`), so a caller switches to
this app by changing only the URL. It may instead, or as well, name IOC values
(`{"IndicatorValues": ["203.0.113.7"], "indicatorType": "IpAddress"}`), and
may carry `dryRun`, `reason`, `requestedBy`, `requestId`, `incidentId`,
`incidentUrl` and `tenantId`. `idempotency_key` picks the key that makes a
repeated request harmless: the `Idempotency-Key` header, else `requestId`.

An error answer stays small whatever the request: at most
`MAX_REPORTED_PROBLEMS` problems are listed, and names and values taken from
the request are shortened and quoted before they are shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import Problem, RequestError
from .ids import MAX_REPORTED_PROBLEMS, parse_indicator_ids

__all__ = [
    "INDICATOR_TYPES",
    "MAX_BODY_BYTES",
    "MAX_TEXT_FIELD_CHARS",
    "MAX_VALUES_PER_REQUEST",
    "MAX_VALUE_CHARS",
    "REQUEST_FIELDS",
    "ApiResponse",
    "DeleteRequest",
    "error_response",
    "idempotency_key",
    "json_response",
    "parse_delete_request",
]

# 15,000 IDs (the tenant cap) take about 200 KB as JSON; 1 MiB leaves room for
# padding and duplicates while refusing anything absurd before parsing it.
MAX_BODY_BYTES = 1_048_576
MAX_TEXT_FIELD_CHARS = 1_000
_JSON_TYPES = ("application/json", "text/json")
MAX_VALUES_PER_REQUEST = 5_000
MAX_VALUE_CHARS = 2_048
INDICATOR_TYPES = (
    "FileSha1",
    "FileSha256",
    "FileMd5",
    "CertificateThumbprint",
    "IpAddress",
    "DomainName",
    "Url",
)
_TEXT_FIELDS = (
    "reason",
    "requestedBy",
    "requestId",
    "incidentId",
    "incidentUrl",
    "tenantId",
    "indicatorType",
)
_ID_FIELD = "IndicatorIds"
_VALUE_FIELD = "IndicatorValues"
_DRY_RUN_FIELD = "dryRun"
_IDEMPOTENCY_HEADER = "Idempotency-Key"
# How much of a name or value from the request an error message repeats.
_SHOWN_CHARS = 40
_NOT_UNICODE = "is not valid Unicode text (it holds a lone surrogate)"
# Every body field a delete request may carry.
REQUEST_FIELDS = frozenset({_ID_FIELD, _VALUE_FIELD, _DRY_RUN_FIELD, *_TEXT_FIELDS})


@dataclass(frozen=True)
class DeleteRequest:
    """A validated request to delete indicators."""

    ids: list[int]
    values: list[str] = field(default_factory=list)
    indicator_type: str | None = None
    dry_run: bool = False
    reason: str | None = None
    requested_by: str | None = None
    request_id: str | None = None
    incident_id: str | None = None
    incident_url: str | None = None
    tenant_id: str | None = None


@dataclass(frozen=True)
class ApiResponse:
    """A response for the function to send: status, JSON body, headers."""

    status: int
    body: dict[str, Any] | None
    headers: Mapping[str, str]

    def body_bytes(self) -> bytes:
        if self.body is None:
            return b""
        return json.dumps(self.body, separators=(",", ":")).encode()


def json_response(
    status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> ApiResponse:
    return ApiResponse(status, body, dict(headers or {}))


def error_response(error: RequestError) -> ApiResponse:
    code = error.code or _code_for(error.status)
    body: dict[str, Any] = {"code": code, "message": error.message}
    if error.problems:
        body["problems"] = [p.to_dict() for p in error.problems]
    headers = {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(error.retry_after_s)
    return json_response(error.status, {"error": body}, headers)


def parse_delete_request(content_type: str | None, body: bytes) -> DeleteRequest:
    """Validate a POST body; raises RequestError naming every problem."""
    document = _json_object(content_type, body)
    problems = _unknown_fields(document)
    if _ID_FIELD not in document and _VALUE_FIELD not in document:
        problems.append(Problem(_ID_FIELD, f"is required (or {_VALUE_FIELD})"))
    texts = {name: _text(document, name, problems) for name in _TEXT_FIELDS}
    kind = texts["indicatorType"]
    if kind is not None and kind not in INDICATOR_TYPES:
        problems.append(
            Problem("indicatorType", f"must be one of {', '.join(INDICATOR_TYPES)}")
        )
    dry_run = document.get(_DRY_RUN_FIELD, False)
    if not isinstance(dry_run, bool):
        problems.append(Problem(_DRY_RUN_FIELD, "must be true or false"))
    values = (
        _values(document[_VALUE_FIELD], problems) if _VALUE_FIELD in document else []
    )
    if problems:
        raise RequestError(_first(problems), problems=problems[:MAX_REPORTED_PROBLEMS])

    ids = []
    if _ID_FIELD in document:
        ids = parse_indicator_ids(document[_ID_FIELD], field=_ID_FIELD)
    return DeleteRequest(
        ids=ids,
        values=values,
        indicator_type=kind,
        dry_run=bool(dry_run),
        reason=texts["reason"],
        requested_by=texts["requestedBy"],
        request_id=texts["requestId"],
        incident_id=texts["incidentId"],
        incident_url=texts["incidentUrl"],
        tenant_id=texts["tenantId"],
    )


def _values(raw: Any, problems: list[Problem]) -> list[str]:
    """IOC values, trimmed and folded; every bad entry becomes a problem."""
    if not isinstance(raw, list) or not raw:
        problems.append(Problem(_VALUE_FIELD, "must be a non-empty array of strings"))
        return []
    if len(raw) > MAX_VALUES_PER_REQUEST:
        problems.append(
            Problem(_VALUE_FIELD, f"holds more than {MAX_VALUES_PER_REQUEST} values")
        )
        return []
    values: dict[str, None] = {}
    for index, value in enumerate(raw):
        where = f"{_VALUE_FIELD}[{index}]"
        if not isinstance(value, str) or not value.strip():
            problems.append(Problem(where, "must be a non-empty string"))
        elif len(value) > MAX_VALUE_CHARS:
            problems.append(
                Problem(where, f"is longer than {MAX_VALUE_CHARS} characters")
            )
        elif not _is_unicode(value):
            problems.append(Problem(where, _NOT_UNICODE))
        else:
            values.setdefault(value.strip())
    return list(values)


def idempotency_key(header: str | None, request: DeleteRequest) -> str | None:
    """The key that makes a repeat of `request` harmless: the Idempotency-Key
    header's value, else the body's requestId; raises RequestError when the
    header's value cannot be kept as a key."""
    if header is None or not header.strip():
        return request.request_id
    problem = None
    if len(header) > MAX_TEXT_FIELD_CHARS:
        problem = f"is longer than {MAX_TEXT_FIELD_CHARS} characters"
    elif not _is_unicode(header):
        problem = _NOT_UNICODE
    if problem is not None:
        raise RequestError(
            f"{_IDEMPOTENCY_HEADER} {problem}",
            problems=[Problem(_IDEMPOTENCY_HEADER, problem)],
        )
    return header


def _json_object(content_type: str | None, body: bytes) -> dict[str, Any]:
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type and media_type not in _JSON_TYPES:
        raise RequestError(
            f"Content-Type must be application/json (or text/json), got {media_type!r}",
            status=415,
        )
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(
            f"the body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}",
            status=413,
        )
    if not body.strip():
        raise RequestError('the body is empty; send {"IndicatorIds": [...]}')
    try:
        document = json.loads(body)
    except UnicodeDecodeError as exc:
        raise RequestError("the body is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise RequestError(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}"
        ) from exc
    except ValueError as exc:
        # Python refuses to read an integer of thousands of digits (a guard
        # against slow conversions); json.loads passes that refusal on.
        raise RequestError("the body holds a number too long to read") from exc
    except RecursionError as exc:
        raise RequestError("the body's JSON is nested too deeply") from exc
    if not isinstance(document, dict):
        raise RequestError("the body must be a JSON object")
    return document


def _unknown_fields(document: Mapping[str, Any]) -> list[Problem]:
    known = REQUEST_FIELDS
    problems = []
    for name in document:
        if name in known:
            continue
        hint = next((k for k in known if k.lower() == name.lower()), None)
        message = (
            f"is not a known field; did you mean {hint!r}?"
            if hint
            else "is not a known field"
        )
        problems.append(Problem(_shown_name(name), message))
    return problems


def _shown_name(name: str) -> str:
    """A field name from the request as an answer may show it: quoted when
    blank, padded or holding characters that do not print (so that the
    answer still names something), then cut to `_SHOWN_CHARS`."""
    readable = bool(name) and name.strip() == name and name.isprintable()
    # The repr of a prefix is enough: no more than _SHOWN_CHARS is shown.
    shown = name if readable else repr(name[:_SHOWN_CHARS])
    return shown if len(shown) <= _SHOWN_CHARS else shown[:_SHOWN_CHARS] + "..."


def _is_unicode(text: str) -> bool:
    """False when `text` holds a lone surrogate: a JSON escape ("\\ud800")
    can carry one, but it has no UTF-8 form, so it can be neither sent to
    Defender, nor hashed into an idempotency key, nor stored and logged as
    the text the caller meant."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(
    document: Mapping[str, Any], name: str, problems: list[Problem]
) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(Problem(name, "must be a string"))
        return None
    if not value.strip():
        # Logic Apps sends "" for empty dynamic content: the same as absent.
        return None
    if len(value) > MAX_TEXT_FIELD_CHARS:
        problems.append(
            Problem(name, f"is longer than {MAX_TEXT_FIELD_CHARS} characters")
        )
        return None
    if not _is_unicode(value):
        problems.append(Problem(name, _NOT_UNICODE))
        return None
    return value


def _first(problems: list[Problem]) -> str:
    first = problems[0]
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"{first.where} {first.message}{more}"


def _code_for(status: int) -> str:
    return {
        403: "Forbidden",
        413: "PayloadTooLarge",
        415: "UnsupportedMediaType",
        404: "NotFound",
        405: "MethodNotAllowed",
    }.get(status, "InvalidRequest")
