"""What the functions do with a call, free of the Functions types.

A POST stores a durable job, then works on it for up to `SYNC_WAIT_SECONDS`:
a job finished by then is answered 200 with its report, otherwise 202 with a
status URL that a plain GET can poll. Polls and timer ticks carry on the
work, so progress never depends on one instance staying alive.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from .cleanup_job import run_cleanup
from .defender import API_BATCH_DELETE
from .errors import (
    BatchDeleteError,
    CredentialError,
    DefenderError,
    DefenderThrottled,
    Problem,
    RequestError,
    SettingsError,
    StorageError,
)
from .http_api import (
    ApiResponse,
    DeleteRequest,
    error_response,
    idempotency_key,
    json_response,
    parse_delete_request,
)
from .jobs import Job, JobStatus, JobUnconfirmed
from .service import Service, get_service
from .settings import Settings
from .status import job_summary, status_document
from .storage import REQUEST
from .submission import submit

__all__ = [
    "JOB_FILTERS",
    "HttpCall",
    "handle_cleanup",
    "handle_http",
    "handle_timer",
]

logger = logging.getLogger(__name__)

# How long a status poll works on the job before answering, and how soon the
# caller is told to poll again.
POLL_WORK_S = 5.0
RETRY_AFTER_S = 5
TIMER_WORK_S = 240.0
# Defender's longest rate window is an hour; a caller is never told to wait
# longer than that.
_MAX_RETRY_AFTER_S = 3600.0
# How soon a caller is told to try again while job storage is unavailable.
STORAGE_RETRY_AFTER_S = 10
MAX_LISTED_JOBS = 500
DEFAULT_LISTED_JOBS = 50
_IDEMPOTENCY_HEADER = "idempotency-key"
_KEY_HEADER = "x-functions-key"
# Headers App Service authentication sets for a signed-in caller.
_PRINCIPAL_HEADERS = {
    "principalName": "x-ms-client-principal-name",
    "principalId": "x-ms-client-principal-id",
    "identityProvider": "x-ms-client-principal-idp",
}
JOB_FILTERS = ("status", "requestedBy", "since", "top", "tenantId")


@dataclass(frozen=True)
class HttpCall:
    """What the HTTP function received."""

    method: str
    url: str
    job_id: str | None
    headers: Mapping[str, str]
    params: Mapping[str, str]
    body: bytes = field(repr=False)


def handle_http(
    call: HttpCall, *, environ: Mapping[str, str] | None = None
) -> ApiResponse:
    """Answer one call of the HTTP function; never raises."""
    try:
        return _route(call, environ)
    except RequestError as exc:
        return error_response(exc)
    except SettingsError as exc:
        logger.error("the app is misconfigured: %s", exc)
        return _failure(500, "Misconfigured", str(exc))
    except JobUnconfirmed as exc:
        logger.error("state storage failed: %s", exc)
        return _storage_unavailable(
            f"job state storage is unavailable, so whether job {exc.job_id} was "
            "stored is unknown; if it was, it will run. Retry later with the "
            "same Idempotency-Key: a repeat then returns that job instead of "
            "starting another"
        )
    except StorageError as exc:
        logger.error("state storage failed: %s", exc)
        return _storage_unavailable(
            "job state storage is unavailable; nothing new was started, retry later"
        )
    except BatchDeleteError as exc:
        return _upstream_failure(exc)


def handle_timer(*, past_due: bool, environ: Mapping[str, str] | None = None) -> None:
    """One tick: resume pending work in every tenant, then apply retention."""
    settings = Settings.from_environ(environ)
    if past_due:
        logger.warning("the timer is running late")
    deadline = time.time() + TIMER_WORK_S
    for tenant in settings.tenant_ids:
        service = get_service(tenant, environ)
        sent = service.worker.drain(deadline=deadline)
        purged = _apply_retention(service)
        logger.info(
            "timer tick for tenant %s: %d batches sent, %d old jobs purged",
            tenant,
            sent,
            purged,
        )


def _route(call: HttpCall, environ: Mapping[str, str] | None) -> ApiResponse:
    # A caller is waiting: storage calls give up within seconds (a 503).
    if call.method == "POST" and not call.job_id:
        request = parse_delete_request(call.headers.get("content-type"), call.body)
        service = get_service(request.tenant_id, environ, patience=REQUEST)
        return _start(service, request, call)
    service = get_service(call.params.get("tenantId"), environ, patience=REQUEST)
    if call.method == "GET" and call.job_id:
        return _status(service, call)
    if call.method == "GET":
        return _list_jobs(service, call)
    raise RequestError(f"{call.method} is not supported here", status=405)


def _start(service: Service, request: DeleteRequest, call: HttpCall) -> ApiResponse:
    key = idempotency_key(call.headers.get(_IDEMPOTENCY_HEADER), request)
    caller = {
        name: call.headers[header]
        for name, header in _PRINCIPAL_HEADERS.items()
        if call.headers.get(header)
    }
    submission = submit(service, request, idempotency_key=key, caller=caller)
    if submission.preview is not None:
        document = job_summary(submission.job)
        document["output"] = submission.preview
        return json_response(200, document)
    job = submission.job
    if not submission.created:
        return _job_response(service, job, call)
    try:
        job = service.work_on(job, service.settings.sync_wait_s, fresh=True)
        return _job_response(service, job, call)
    except StorageError as exc:
        # The job is stored and carries on once storage is back (any poll or
        # timer tick resumes it): the caller needs its status URL, not a 503
        # saying nothing was started.
        logger.warning("job %s is stored, but storage failed: %s", job.id, exc)
        return _accepted(service, job, call)


def _status(service: Service, call: HttpCall) -> ApiResponse:
    assert call.job_id is not None
    job = service.store.get(call.job_id) if _plausible_id(call.job_id) else None
    if job is None:
        raise RequestError(f"there is no job {call.job_id!r}", status=404)
    if not job.finished:
        job = service.work_on(job, POLL_WORK_S)
    return _job_response(service, job, call)


def _list_jobs(service: Service, call: HttpCall) -> ApiResponse:
    unknown = sorted(set(call.params) - {*JOB_FILTERS, "code"})
    if unknown:
        problem = f"is not a filter; filters are {', '.join(JOB_FILTERS)}"
        raise RequestError(
            f"unknown query parameter(s) {', '.join(unknown)}; "
            f"filters are {', '.join(JOB_FILTERS)}",
            problems=[Problem(name, problem) for name in unknown],
        )
    status = call.params.get("status")
    if status is not None and status not in {s.value for s in JobStatus}:
        raise _bad_param(
            "status", f"must be one of {', '.join(s.value for s in JobStatus)}"
        )
    since = call.params.get("since")
    if since is not None:
        since = _iso_param("since", since)
    jobs = service.store.find_jobs(
        limit=_top(call.params.get("top")),
        status=status,
        requested_by=call.params.get("requestedBy"),
        since=since,
    )
    return json_response(200, {"jobs": [job_summary(j) for j in jobs]})


def _top(text: str | None) -> int:
    if text is None:
        return DEFAULT_LISTED_JOBS
    # isdigit() alone accepts digits of other scripts ("²") that int() refuses.
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LISTED_JOBS:
        raise _bad_param("top", f"must be a whole number from 1 to {MAX_LISTED_JOBS}")
    return int(text)


def _bad_param(name: str, problem: str) -> RequestError:
    """A 400 for query parameter `name`, naming it as the problem's place."""
    return RequestError(f"{name} {problem}", problems=[Problem(name, problem)])


def _iso_param(name: str, text: str) -> str:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _bad_param(
            name,
            "must be an ISO 8601 time such as 2026-12-01T00:00:00Z (a '+' in "
            "its offset must be sent as %2B)",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    try:
        utc = moment.astimezone(dt.UTC)
    except OverflowError:
        # 0001-01-01T00:00:00+01:00 would be in year 0 in UTC, which no
        # datetime can hold; likewise just past 9999-12-31 at the other end.
        raise _bad_param(name, "must fall within the years 1 to 9999 in UTC") from None
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _apply_retention(service: Service) -> int:
    days = service.settings.audit_retention_days
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    old = service.store.find_jobs(
        limit=MAX_LISTED_JOBS, before=_iso_param("cutoff", cutoff.isoformat())
    )
    finished = [job for job in old if job.finished]
    for job in finished:
        service.store.purge(job)
    return len(finished)


def _job_response(service: Service, job: Job, call: HttpCall) -> ApiResponse:
    url = _status_url(service, call, job.id)
    pieces = service.store.pieces_of(job)
    throttled_s = 0.0 if job.finished else _throttled_for_s(service)
    document = status_document(job, pieces, url, throttled_for_s=throttled_s)
    if job.finished:
        return json_response(200, document)
    headers = {"Location": url, "Retry-After": str(RETRY_AFTER_S)}
    return json_response(202, document, headers)


def _throttled_for_s(service: Service) -> float:
    """What is left of a 429's wait on the tenant's calls; 0 when that is
    unknown (the budget could not be read), as the status is still worth
    answering."""
    try:
        return service.budget.throttled_for_s(API_BATCH_DELETE)
    except StorageError:
        return 0.0


def _status_url(service: Service, call: HttpCall, job_id: str) -> str:
    """The job's status URL, carrying the caller's function key like
    Durable Functions' status URLs so that a plain GET can poll it.

    Only the path comes from the request; where it leads is the app's own
    address (`Settings.public_base_url_for`), never the Host header."""
    path = urlsplit(call.url).path.rstrip("/")
    if call.job_id:
        path = path[: -len(call.job_id)].rstrip("/")
    base = service.settings.public_base_url_for(call.url) + path
    query = []
    key = call.params.get("code") or call.headers.get(_KEY_HEADER)
    if key:
        query.append(f"code={quote(key, safe='')}")
    if not service.is_home:
        query.append(f"tenantId={quote(service.tenant_id, safe='')}")
    return f"{base}/{job_id}" + ("?" + "&".join(query) if query else "")


def _plausible_id(job_id: str) -> bool:
    return len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id)


def _accepted(service: Service, job: Job, call: HttpCall) -> ApiResponse:
    """202 for a stored job whose progress cannot be read for now."""
    url = _status_url(service, call, job.id)
    document = job_summary(job)
    document["customStatus"] = {"lastError": "job state storage is unavailable"}
    document["output"] = None
    document["statusQueryGetUri"] = url
    headers = {"Location": url, "Retry-After": str(STORAGE_RETRY_AFTER_S)}
    return json_response(202, document, headers)


def _storage_unavailable(message: str) -> ApiResponse:
    retry = {"Retry-After": str(STORAGE_RETRY_AFTER_S)}
    return _failure(503, "StorageUnavailable", message, retry)


def _failure(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> ApiResponse:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    return json_response(status, body, headers)


def _upstream_failure(exc: BatchDeleteError) -> ApiResponse:
    """The answer when Key Vault, Entra ID or Defender failed a request.

    The caller learns which service failed and that a retry may succeed. The
    detail names vault URLs, secret names and API hosts, so it goes to the
    log only. Defender still throttling once the client has waited as long
    as it may keeps its meaning: 429 with Retry-After, as for the daily cap.
    """
    if isinstance(exc, DefenderThrottled):
        logger.warning("Defender is still throttling: %s", exc)
        wait_s = _retry_after(exc.retry_after_s)
        throttled = RequestError(
            "Defender is throttling this tenant's calls; this request started "
            f"nothing, retry in {wait_s} s",
            status=429,
            code="UpstreamThrottled",
            retry_after_s=wait_s,
        )
        return error_response(throttled)
    if isinstance(exc, CredentialError):
        logger.error("could not sign in to Defender: %s", exc)
        failed = (
            "could not sign in to Defender: reading the client secret from Key "
            "Vault or getting a token from Entra ID failed"
        )
    elif isinstance(exc, DefenderError):
        logger.error("Defender failed the request: %s (target=%s)", exc, exc.target)
        failed = "Defender refused or did not answer the app's calls"
    else:
        logger.error("could not serve the request: %s", exc)
        failed = "a service the app depends on failed"
    message = f"{failed}; this request started nothing, retry later"
    return _failure(502, "UpstreamUnavailable", message)


def _retry_after(seconds: float) -> int:
    """Whole seconds for a Retry-After header: at least 1, at most an hour."""
    return math.ceil(min(max(1.0, seconds), _MAX_RETRY_AFTER_S))


def handle_cleanup(*, past_due: bool, environ: Mapping[str, str] | None = None) -> None:
    """One scheduled cleanup: run the policy in every tenant the app serves."""
    settings = Settings.from_environ(environ)
    policy = settings.parsed_cleanup_policy()
    if policy is None:
        logger.info("no CLEANUP_POLICY is set; the scheduled cleanup does nothing")
        return
    if past_due:
        logger.warning("the cleanup timer is running late")
    deadline = time.time() + TIMER_WORK_S
    for tenant in settings.tenant_ids:
        service = get_service(tenant, environ)
        try:
            run = run_cleanup(service, policy)
        except RequestError as exc:
            logger.error("cleanup for tenant %s refused: %s", tenant, exc.message)
            continue
        if not run.preview:
            service.work_on(run.job, max(0.0, deadline - time.time()))
