"""Calling our app's HTTP function as a Sentinel playbook does.

A caller POSTs its IDs with an ``Idempotency-Key``, so that a POST that got
no answer (or a 5xx) can be sent again without starting a second job, as the
Logic Apps retry policy does. After a 202 it either polls the status URL,
honouring Retry-After, or (`watch_list`) watches the job list, which does no
work in the app, and reads the status URL once the job is finished.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests

from .callers import Deadline

__all__ = ["AppCaller", "JobAnswer"]

ROUTE = "/indicators/batch-delete"
KEY_HEADER = "x-functions-key"
IDEMPOTENCY_HEADER = "Idempotency-Key"
FINISHED = ("Completed", "Failed")
OK = 200
ACCEPTED = 202
SERVER_ERROR = 500
TIMEOUT_S = (30.0, 120.0)
POST_ATTEMPTS = 4
POST_RETRY_S = 1.0
LIST_POLL_S = 0.1
DEFAULT_RETRY_AFTER_S = 5.0

# A response, or the name of the exception that stood for one.
_Outcome = requests.Response | str


@dataclass(frozen=True)
class JobAnswer:
    """How a caller's POST was answered in the end (status or exception
    name), what made it retry, its job's final status document, when the
    caller saw that (epoch), and what stopped it short of one."""

    posted: str
    retried: tuple[str, ...]
    document: dict[str, Any] | None
    seen_at: float
    error: str | None


class AppCaller:
    """Sends one deletion request to the app and waits for its job."""

    def __init__(
        self, base_url: str, key: str, deadline: Deadline, *, watch_list: bool
    ) -> None:
        self._url = base_url.rstrip("/") + ROUTE
        self._key = key
        self._deadline = deadline
        self._watch_list = watch_list

    def delete(self, ids: list[int], request_id: str) -> JobAnswer:
        """POST `ids`, then wait until the job is finished or the deadline."""
        body = {"IndicatorIds": [str(i) for i in ids], "requestedBy": "bench"}
        with requests.Session() as session:
            session.headers[KEY_HEADER] = self._key
            session.headers[IDEMPOTENCY_HEADER] = request_id
            outcome, retried = self._post(session, body)
            posted = _label(outcome)
            if (
                isinstance(outcome, requests.Response)
                and outcome.status_code == ACCEPTED
            ):
                outcome = self._wait(session, outcome.headers["Location"])
            if not isinstance(outcome, requests.Response) or outcome.status_code != OK:
                error = _label(outcome)
                return JobAnswer(posted, retried, None, time.time(), error)
            return JobAnswer(posted, retried, outcome.json(), time.time(), None)

    def _post(
        self, session: requests.Session, body: dict[str, Any]
    ) -> tuple[_Outcome, tuple[str, ...]]:
        """The POST's last outcome and the outcomes that were retried."""
        retried: list[str] = []
        while True:
            outcome = _request(session, "POST", self._url, body)
            retryable = not isinstance(outcome, requests.Response) or (
                outcome.status_code >= SERVER_ERROR
            )
            if not retryable or len(retried) + 1 == POST_ATTEMPTS:
                return outcome, tuple(retried)
            if not self._deadline.sleep(_retry_after(outcome, POST_RETRY_S)):
                return outcome, tuple(retried)
            retried.append(_label(outcome))

    def _wait(self, session: requests.Session, location: str) -> _Outcome:
        if self._watch_list:
            return self._after_list_says_done(session, location)
        return self._poll_status(session, location)

    def _after_list_says_done(
        self, session: requests.Session, location: str
    ) -> _Outcome:
        job_id = location.split("?", 1)[0].rsplit("/", 1)[-1]
        while not self._deadline.expired():
            listing = _request(session, "GET", self._url)
            if isinstance(listing, requests.Response) and listing.status_code == OK:
                jobs = {j["id"]: j["runtimeStatus"] for j in listing.json()["jobs"]}
                if jobs.get(job_id) in FINISHED:
                    return _request(session, "GET", location)
            self._deadline.sleep(LIST_POLL_S)
        return "capped"

    def _poll_status(self, session: requests.Session, location: str) -> _Outcome:
        while not self._deadline.expired():
            outcome = _request(session, "GET", location)
            if not isinstance(outcome, requests.Response):
                return outcome
            if outcome.status_code != ACCEPTED:
                return outcome
            self._deadline.sleep(_retry_after(outcome, DEFAULT_RETRY_AFTER_S))
        return "capped"


def _request(
    session: requests.Session, method: str, url: str, body: Any = None
) -> _Outcome:
    try:
        return session.request(method, url, json=body, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        return type(exc).__name__


def _retry_after(outcome: _Outcome, default: float) -> float:
    if not isinstance(outcome, requests.Response):
        return default
    try:
        return float(outcome.headers.get("Retry-After", default))
    except ValueError:
        return default


def _label(outcome: _Outcome) -> str:
    return (
        str(outcome.status_code) if isinstance(outcome, requests.Response) else outcome
    )
