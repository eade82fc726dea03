"""Wiring: one set of long-lived clients per configuration, and the
request handling both functions share.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from .credentials import DefenderTokenProvider, SecretSource
from .defender import API_BATCH_DELETE, API_LIST, DefenderClient
from .deletion import BatchDeleter
from .errors import RequestError, SettingsError
from .http_api import ApiResponse, error_response, json_response, parse_delete_request
from .pacing import InProcessBudget
from .settings import Settings

__all__ = ["Service", "get_service", "handle_http", "handle_timer"]

logger = logging.getLogger(__name__)

_services: dict[Settings, Service] = {}
_services_lock = threading.Lock()


@dataclass
class Service:
    """The clients one configuration needs, built once per process."""

    settings: Settings
    client: DefenderClient
    deleter: BatchDeleter

    @classmethod
    def build(cls, settings: Settings) -> Service:
        secrets = SecretSource(settings)
        tokens = DefenderTokenProvider(settings, secrets)
        budget = InProcessBudget(
            {
                API_BATCH_DELETE: settings.batch_delete_limits,
                API_LIST: settings.list_limits,
            }
        )
        client = DefenderClient(settings.api_url, tokens, budget)
        return cls(settings, client, BatchDeleter(client))


def get_service(environ: Mapping[str, str] | None = None) -> Service:
    """The service for the current settings; raises SettingsError."""
    settings = Settings.from_environ(environ)
    with _services_lock:
        service = _services.get(settings)
        if service is None:
            service = _services[settings] = Service.build(settings)
        return service


def handle_http(
    method: str,
    job_id: str | None,
    content_type: str | None,
    body: bytes,
    *,
    environ: Mapping[str, str] | None = None,
) -> ApiResponse:
    """Answer one call of the HTTP function."""
    try:
        service = get_service(environ)
    except SettingsError as exc:
        logger.error("the app is misconfigured: %s", exc)
        return json_response(
            500, {"error": {"code": "Misconfigured", "message": str(exc)}}
        )
    if method == "POST" and not job_id:
        return _delete(service, content_type, body)
    if method == "GET" and job_id:
        return error_response(RequestError(f"no job {job_id!r}", status=404))
    return error_response(RequestError(f"{method} is not supported here", status=405))


def _delete(service: Service, content_type: str | None, body: bytes) -> ApiResponse:
    try:
        request = parse_delete_request(content_type, body)
    except RequestError as exc:
        logger.info("rejected a delete request: %s", exc.message)
        return error_response(exc)

    logger.info(
        "deleting %d indicators (requestedBy=%r, reason=%r)",
        len(request.ids),
        request.requested_by,
        request.reason,
    )
    report = service.deleter.run(request.ids)
    report.extra.update(
        {
            "status": "Completed" if report.complete else "CompletedWithFailures",
            "requestedBy": request.requested_by,
            "reason": request.reason,
        }
    )
    counts = report.to_dict()["counts"]
    logger.info("delete request finished: %s", counts)
    return json_response(200, report.to_dict())


def handle_timer(*, past_due: bool, environ: Mapping[str, str] | None = None) -> None:
    """Run one tick of the timer function."""
    try:
        service = get_service(environ)
    except SettingsError as exc:
        logger.error("the app is misconfigured: %s", exc)
        raise
    if past_due:
        logger.warning("the timer is running late")
    logger.info(
        "timer tick for tenant %s: no pending deletion work to resume",
        service.settings.tenant_id,
    )
