"""Defender-shaped answers: the error body, JSON replies, request bodies.

Every failure is raised as `ApiError` inside a handler and written once, at
the edge, as ``{"error": {"code", "message", "target"}}`` with a fresh
correlation ID in ``target``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

__all__ = [
    "JSON_MIMETYPE",
    "ApiError",
    "Reply",
    "error_body",
    "read_json_object",
    "to_response",
]

JSON_MIMETYPE = "application/json"
_JSON_CONTENT_TYPE = "application/json; charset=utf-8"
_NO_CONTENT = 204
_UNSUPPORTED_MEDIA_TYPE = 415
_BAD_REQUEST = 400


class ApiError(Exception):
    """A failure answered with Defender's error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Reply:
    """A handler's answer before it is encoded; `body` None means no body."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


def error_body(error: ApiError) -> dict[str, Any]:
    """Defender's error object for `error`, with a new ``target``."""
    return {
        "error": {
            "code": error.code,
            "message": error.message,
            "target": str(uuid.uuid4()),
        }
    }


def to_response(outcome: Reply | ApiError) -> Response:
    """Encode a reply or an error as a Werkzeug response."""
    if isinstance(outcome, ApiError):
        outcome = Reply(outcome.status, error_body(outcome), outcome.headers)
    if outcome.body is None or outcome.status == _NO_CONTENT:
        return Response(status=outcome.status, headers=dict(outcome.headers))
    return Response(
        json.dumps(outcome.body, separators=(",", ":")),
        status=outcome.status,
        headers=dict(outcome.headers),
        content_type=_JSON_CONTENT_TYPE,
    )


def read_json_object(request: Request) -> dict[str, Any]:
    """The request's JSON object body; raises ApiError 415 or 400."""
    if request.mimetype != JSON_MIMETYPE:
        raise ApiError(
            _UNSUPPORTED_MEDIA_TYPE,
            "BadRequest",
            f"Content-Type must be {JSON_MIMETYPE}, not {request.mimetype or 'none'}",
        )
    try:
        body = json.loads(request.get_data(as_text=True))
    except ValueError as exc:
        raise ApiError(
            _BAD_REQUEST, "InvalidRequestBody", "the body is not valid JSON"
        ) from exc
    if not isinstance(body, dict):
        raise ApiError(
            _BAD_REQUEST, "InvalidRequestBody", "the body must be a JSON object"
        )
    return body
