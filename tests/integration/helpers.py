"""Calling the functions the way the Functions host does."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
from azure.functions.timer import TimerRequest

import BatchDeleteHttp
import BatchDeleteTimer

BASE = "https://app.example/api/indicators/batch-delete"


def post(
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    params: dict[str, str] | None = None,
) -> func.HttpResponse:
    payload = raw if raw is not None else json.dumps(body).encode()
    request = func.HttpRequest(
        "POST",
        BASE,
        headers={"Content-Type": "application/json", **(headers or {})},
        params=params or {},
        route_params={},
        body=payload,
    )
    return BatchDeleteHttp.main(request)


def get(
    job_id: str | None = None, params: dict[str, str] | None = None
) -> func.HttpResponse:
    url = f"{BASE}/{job_id}" if job_id else BASE
    request = func.HttpRequest(
        "GET",
        url,
        headers={},
        params=params or {},
        route_params={"jobId": job_id} if job_id else {},
        body=b"",
    )
    return BatchDeleteHttp.main(request)


def poll_until_done(job_id: str, polls: int = 20) -> func.HttpResponse:
    """GET the job's status until it is no longer 202, at most `polls`
    times (each poll works on the job for a few seconds); the last answer."""
    for _ in range(polls):
        polled = get(job_id)
        if polled.status_code != 202:
            break
    return polled


def tick() -> None:
    BatchDeleteTimer.main(TimerRequest(past_due=False))


def body_of(response: func.HttpResponse) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(response.get_body())
    return document


def batch_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in calls if c["api"] == "batch_delete"]
