"""Wiring and request handling shared by both functions.

One `Service` per configuration and process holds the long-lived clients. A
POST stores a durable job, then works on it for up to `SYNC_WAIT_SECONDS`:
a job finished by then is answered 200 with its report, otherwise 202 with a
status URL that a plain GET can poll. Polls and timer ticks carry on the
work, so progress never depends on one instance staying alive.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .credentials import DefenderTokenProvider, SecretSource
from .defender import API_BATCH_DELETE, API_LIST, DefenderClient
from .errors import RequestError, SettingsError, StorageError
from .http_api import ApiResponse, error_response, json_response, parse_delete_request
from .jobs import Job, JobStore
from .settings import Settings
from .status import job_summary, status_document
from .storage import open_state_table
from .table_budget import TableBudget
from .worker import Worker

__all__ = ["HttpCall", "Service", "get_service", "handle_http", "handle_timer"]

logger = logging.getLogger(__name__)

# The Azure SDK logs every request's headers at INFO, and azure-identity every
# token it gets: in a function app that floods Application Insights, so only
# their warnings are kept. Our own client logs one line per Defender call.
for _name in ("azure.core.pipeline.policies.http_logging_policy", "azure.identity"):
    logging.getLogger(_name).setLevel(logging.WARNING)

# How long a status poll works on the job before answering, and how soon the
# caller is told to poll again.
POLL_WORK_S = 5.0
RETRY_AFTER_S = 5
TIMER_WORK_S = 240.0
RECENT_JOBS = 50
_WAIT_STEP_S = 0.25
_IDEMPOTENCY_HEADER = "idempotency-key"
_KEY_HEADER = "x-functions-key"

_services: dict[Settings, Service] = {}
_services_lock = threading.Lock()


@dataclass(frozen=True)
class HttpCall:
    """What the HTTP function received, free of the Functions types."""

    method: str
    url: str
    job_id: str | None
    headers: Mapping[str, str]
    params: Mapping[str, str]
    body: bytes = field(repr=False)


@dataclass
class Service:
    """The clients one configuration needs, built once per process."""

    settings: Settings
    client: DefenderClient
    store: JobStore
    worker: Worker

    @classmethod
    def build(cls, settings: Settings) -> Service:
        table = open_state_table(settings)
        partition = settings.tenant_id.lower()
        budget = TableBudget(
            table,
            partition,
            {
                API_BATCH_DELETE: settings.batch_delete_limits,
                API_LIST: settings.list_limits,
            },
        )
        tokens = DefenderTokenProvider(settings, SecretSource(settings))
        client = DefenderClient(settings.api_url, tokens, budget)
        store = JobStore(table, partition)
        worker = Worker(store, client, budget, linger_s=settings.linger_s)
        return cls(settings, client, store, worker)

    def work_on(self, job: Job, seconds: float) -> Job:
        """Drain pending work until `job` finishes or time runs out."""
        deadline = time.time() + seconds
        current = job
        while not current.finished and time.time() < deadline:
            self.worker.drain(deadline=deadline, done=lambda: self._finished(job.id))
            current = self.store.get(job.id) or current
            if not current.finished:
                time.sleep(_WAIT_STEP_S)
        return current

    def _finished(self, job_id: str) -> bool:
        job = self.store.get(job_id)
        return job is None or job.finished


def get_service(environ: Mapping[str, str] | None = None) -> Service:
    """The service for the current settings; raises SettingsError."""
    settings = Settings.from_environ(environ)
    with _services_lock:
        service = _services.get(settings)
        if service is None:
            service = _services[settings] = Service.build(settings)
        return service


def handle_http(
    call: HttpCall, *, environ: Mapping[str, str] | None = None
) -> ApiResponse:
    """Answer one call of the HTTP function; never raises."""
    try:
        service = get_service(environ)
        return _route(service, call)
    except RequestError as exc:
        return error_response(exc)
    except SettingsError as exc:
        logger.error("the app is misconfigured: %s", exc)
        return _failure(500, "Misconfigured", str(exc))
    except StorageError as exc:
        logger.error("state storage failed: %s", exc)
        return _failure(
            503,
            "StorageUnavailable",
            "job state storage is unavailable; nothing was started, retry later",
        )


def handle_timer(*, past_due: bool, environ: Mapping[str, str] | None = None) -> None:
    """One tick of the timer: resume whatever work is pending."""
    service = get_service(environ)
    if past_due:
        logger.warning("the timer is running late")
    sent = service.worker.drain(deadline=time.time() + TIMER_WORK_S)
    logger.info("timer tick: %d batches sent", sent)


def _route(service: Service, call: HttpCall) -> ApiResponse:
    if call.method == "POST" and not call.job_id:
        return _start(service, call)
    if call.method == "GET" and call.job_id:
        return _status(service, call)
    if call.method == "GET":
        jobs = service.store.recent_jobs(RECENT_JOBS)
        return json_response(200, {"jobs": [job_summary(j) for j in jobs]})
    raise RequestError(f"{call.method} is not supported here", status=405)


def _start(service: Service, call: HttpCall) -> ApiResponse:
    request = parse_delete_request(call.headers.get("content-type"), call.body)
    key = call.headers.get(_IDEMPOTENCY_HEADER) or request.request_id
    job, created = service.store.create(
        request.ids,
        requested_by=request.requested_by,
        reason=request.reason,
        idempotency_key=key,
    )
    logger.info(
        "job %s %s: %d IDs, requestedBy=%r, reason=%r",
        job.id,
        "created" if created else "found by its idempotency key",
        len(request.ids),
        request.requested_by,
        request.reason,
    )
    job = service.work_on(job, service.settings.sync_wait_s)
    return _job_response(service, job, call)


def _status(service: Service, call: HttpCall) -> ApiResponse:
    assert call.job_id is not None
    job = service.store.get(call.job_id) if _plausible_id(call.job_id) else None
    if job is None:
        raise RequestError(f"there is no job {call.job_id!r}", status=404)
    if not job.finished:
        job = service.work_on(job, POLL_WORK_S)
    return _job_response(service, job, call)


def _job_response(service: Service, job: Job, call: HttpCall) -> ApiResponse:
    url = _status_url(call, job.id)
    document = status_document(job, service.store.pieces_of(job), url)
    if job.finished:
        return json_response(200, document)
    headers = {"Location": url, "Retry-After": str(RETRY_AFTER_S)}
    return json_response(202, document, headers)


def _status_url(call: HttpCall, job_id: str) -> str:
    """The job's status URL, carrying the caller's function key like
    Durable Functions' status URLs so that a plain GET can poll it."""
    base = call.url.split("?", 1)[0].rstrip("/")
    if call.job_id:
        base = base[: -len(call.job_id)].rstrip("/")
    key = call.params.get("code") or call.headers.get(_KEY_HEADER)
    return f"{base}/{job_id}" + (f"?code={key}" if key else "")


def _plausible_id(job_id: str) -> bool:
    return len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id)


def _failure(status: int, code: str, message: str) -> ApiResponse:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    return json_response(status, body)
