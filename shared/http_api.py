"""The HTTP API, independent of the Functions runtime.

`parse_delete_request` turns a caller's raw request into a validated
`DeleteRequest` or a `RequestError` that says what is wrong and where. The
body is Defender's own (`{"IndicatorIds": [...]}`), so a caller switches to
this app by changing only the URL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import Problem, RequestError
from .ids import parse_indicator_ids

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_TEXT_FIELD_CHARS",
    "ApiResponse",
    "DeleteRequest",
    "error_response",
    "json_response",
    "parse_delete_request",
]

# 15,000 IDs (the tenant cap) take about 200 KB as JSON; 1 MiB leaves room for
# padding and duplicates while refusing anything absurd before parsing it.
MAX_BODY_BYTES = 1_048_576
MAX_TEXT_FIELD_CHARS = 1_000
_JSON_TYPES = ("application/json", "text/json")
_TEXT_FIELDS = ("reason", "requestedBy", "requestId")
_ID_FIELD = "IndicatorIds"


@dataclass(frozen=True)
class DeleteRequest:
    """A validated request to delete indicators."""

    ids: list[int]
    reason: str | None = None
    requested_by: str | None = None
    request_id: str | None = None


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
    body: dict[str, Any] = {"code": _code_for(error.status), "message": error.message}
    if error.problems:
        body["problems"] = [p.to_dict() for p in error.problems]
    return json_response(error.status, {"error": body})


def parse_delete_request(content_type: str | None, body: bytes) -> DeleteRequest:
    """Validate a POST body; raises RequestError naming every problem."""
    document = _json_object(content_type, body)
    problems = _unknown_fields(document)
    if _ID_FIELD not in document:
        problems.append(Problem(_ID_FIELD, "is required"))
    texts = {name: _text(document, name, problems) for name in _TEXT_FIELDS}
    if problems:
        raise RequestError(_first(problems), problems=problems)

    ids = parse_indicator_ids(document[_ID_FIELD], field=_ID_FIELD)
    return DeleteRequest(ids, texts["reason"], texts["requestedBy"], texts["requestId"])


def _json_object(content_type: str | None, body: bytes) -> dict[str, Any]:
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type and media_type not in _JSON_TYPES:
        raise RequestError(
            f"Content-Type must be application/json, got {media_type!r}", status=415
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
    except RecursionError as exc:
        raise RequestError("the body's JSON is nested too deeply") from exc
    if not isinstance(document, dict):
        raise RequestError("the body must be a JSON object")
    return document


def _unknown_fields(document: Mapping[str, Any]) -> list[Problem]:
    known = {_ID_FIELD, *_TEXT_FIELDS}
    problems = []
    for name in document:
        if name in known:
            continue
        hint = next((k for k in known if k.lower() == name.lower()), None)
        message = (
            f"is not a known field; did you mean {hint!r}?"
            if hint
            else ("is not a known field")
        )
        problems.append(Problem(name, message))
    return problems


def _text(
    document: Mapping[str, Any], name: str, problems: list[Problem]
) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(Problem(name, "must be a string"))
        return None
    if len(value) > MAX_TEXT_FIELD_CHARS:
        problems.append(
            Problem(name, f"is longer than {MAX_TEXT_FIELD_CHARS} characters")
        )
        return None
    return value


def _first(problems: list[Problem]) -> str:
    first = problems[0]
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"{first.where} {first.message}{more}"


def _code_for(status: int) -> str:
    return {
        413: "PayloadTooLarge",
        415: "UnsupportedMediaType",
        404: "NotFound",
        405: "MethodNotAllowed",
    }.get(status, "InvalidRequest")
