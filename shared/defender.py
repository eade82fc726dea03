"""The Defender for Endpoint indicator API: BatchDelete, List and Delete.

This is the one place where HTTP failures become our exceptions. Every call
first takes a slot from the shared `RateBudget`, so retries are paced like
first attempts. urllib3's `Retry` handles only connections that could not be
opened (no request reached Defender, so no budget was spent); 5xx, 429 and 401
are retried here, because each of those attempts is a call that Defender
counts and must go through the budget.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .credentials import TokenProvider
from .errors import (
    DefenderError,
    DefenderThrottled,
    DefenderUnavailable,
    StorageError,
)
from .ids import MAX_IDS_PER_BATCH, as_strings
from .pacing import RateBudget, Slot

__all__ = [
    "API_BATCH_DELETE",
    "API_LIST",
    "LIST_PAGE_SIZE",
    "DefenderClient",
]

logger = logging.getLogger(__name__)

API_BATCH_DELETE = "batch_delete"
API_LIST = "list"

LIST_PAGE_SIZE = 10_000
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 120.0
MAX_ATTEMPTS = 5
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 30.0
DEFAULT_RETRY_AFTER_S = 10.0
# How long one call may wait for the budget and for Retry-After in total.
MAX_WAIT_S = 900.0
_CONNECT_RETRIES = 3


class DefenderClient:
    """A paced, retrying client for the indicator endpoints."""

    def __init__(
        self,
        api_url: str,
        tokens: TokenProvider,
        budget: RateBudget,
        *,
        session: requests.Session | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        max_wait_s: float = MAX_WAIT_S,
        backoff_base_s: float = BACKOFF_BASE_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._tokens = tokens
        self._budget = budget
        self._session = session or _new_session()
        self._max_attempts = max_attempts
        self._max_wait_s = max_wait_s
        self._backoff_base_s = backoff_base_s
        self._sleep = sleep

    def close(self) -> None:
        self._session.close()

    def batch_delete(self, ids: Sequence[int]) -> None:
        """Delete every ID or none; raises DefenderError (404, 403, ...)."""
        if not 1 <= len(ids) <= MAX_IDS_PER_BATCH:
            raise ValueError(f"a batch holds 1..{MAX_IDS_PER_BATCH} IDs")
        body = {"IndicatorIds": as_strings(ids)}
        self._call(API_BATCH_DELETE, "POST", "/api/indicators/BatchDelete", body)

    def delete(self, indicator_id: int) -> bool:
        """Delete one indicator; False when it did not exist."""
        try:
            self._call(API_LIST, "DELETE", f"/api/indicators/{indicator_id}")
        except DefenderError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def list_indicators(
        self, *, odata_filter: str | None = None, page_size: int = LIST_PAGE_SIZE
    ) -> Iterator[dict[str, Any]]:
        """Every active indicator matching the filter, page by page."""
        params: dict[str, str] = {"$top": str(page_size)}
        if odata_filter:
            params["$filter"] = odata_filter
        skip = 0
        next_url: str | None = None
        while True:
            if next_url is None:
                params["$skip"] = str(skip)
                page = self._call(API_LIST, "GET", "/api/indicators", params=params)
            else:
                page = self._call(API_LIST, "GET", next_url)
            rows = _rows(page)
            yield from rows
            next_url = self._next_link(page)
            if next_url is None and len(rows) < page_size:
                return
            skip += len(rows)

    def _next_link(self, page: requests.Response) -> str | None:
        link = page.json().get("@odata.nextLink")
        if not isinstance(link, str) or not link:
            return None
        # A next link may only lead back to the API host we were given.
        if urlsplit(link).netloc != urlsplit(self.api_url).netloc:
            raise DefenderError(
                "List returned a next link to another host", url=self.api_url
            )
        return link

    def _call(
        self,
        api: str,
        method: str,
        path_or_url: str,
        body: Mapping[str, Any] | None = None,
        *,
        params: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = path_or_url if "://" in path_or_url else self.api_url + path_or_url
        attempt = _Attempts(self._max_attempts, self._max_wait_s)
        fresh_token = False
        while True:
            response = self._send(api, method, url, body, params, fresh_token)
            if response is None:
                error: DefenderError = DefenderUnavailable(
                    f"{method} {_safe(url)}: no answer", url=_safe(url)
                )
            elif response.ok:
                return response
            else:
                error = _error_from(response, method, url)
            fresh_token = self._recover(api, error, attempt, fresh_token)

    def _send(
        self,
        api: str,
        method: str,
        url: str,
        body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        fresh_token: bool,
    ) -> requests.Response | None:
        """One attempt within the budget: Defender's answer, or None when no
        answer came. A call that fails before anything is sent gives its
        budget slot back; any other counts."""
        slot = self._budget.acquire(api, timeout_s=self._max_wait_s)
        try:
            request = self._prepare(method, url, body, params, fresh_token)
            # What `Session.request` takes from the environment: proxies and
            # REQUESTS_CA_BUNDLE.
            options = self._session.merge_environment_settings(
                url, {}, None, None, None
            )
        except BaseException:
            # Nothing reached Defender (no token, or a request that cannot be
            # built, such as text with no UTF-8 form): the slot was not used.
            _give_back(slot, sent=False)
            raise
        started = time.monotonic()
        try:
            response = self._session.send(
                request, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S), **options
            )
        except requests.RequestException as exc:
            # Only a connection that never opened certainly sent nothing.
            _give_back(slot, sent=not isinstance(exc, requests.ConnectTimeout))
            logger.warning(
                "%s %s failed after %.0f ms: %s",
                method,
                _path(url),
                _ms(started),
                type(exc).__name__,
            )
            return None
        _give_back(slot, sent=True)
        _log_response(method, url, response, started)
        return response

    def _prepare(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        fresh_token: bool,
    ) -> requests.PreparedRequest:
        """The request as it will be sent; raises whatever stops it being
        built (CredentialError for the token, UnicodeEncodeError, ...)."""
        # Fetched after any wait for the budget, so it cannot expire waiting.
        token = self._tokens.token(fresh=fresh_token)
        request = requests.Request(
            method,
            url,
            json=body,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
        )
        return self._session.prepare_request(request)

    def _recover(
        self,
        api: str,
        error: DefenderError,
        attempt: _Attempts,
        fresh_token: bool,
    ) -> bool:
        """Wait before the next attempt, or raise; True asks for a new token."""
        if error.status == 401 and not fresh_token:
            return True
        if error.status == 429:
            assert isinstance(error, DefenderThrottled)
            self._budget.throttled(api, error.retry_after_s)
            attempt.wait(error.retry_after_s, error)
            return fresh_token
        retryable = error.status is None or error.status >= 500
        if not retryable or attempt.last():
            raise error
        self._sleep(attempt.wait(attempt.backoff(self._backoff_base_s), error))
        return fresh_token


class _Attempts:
    """Counts attempts and the time spent waiting for one call."""

    def __init__(self, max_attempts: int, max_wait_s: float) -> None:
        self._left = max_attempts
        self._max_wait_s = max_wait_s
        self._waited = 0.0
        self._tries = 0

    def last(self) -> bool:
        self._tries += 1
        self._left -= 1
        return self._left <= 0

    def backoff(self, base_s: float) -> float:
        ceiling = min(BACKOFF_MAX_S, base_s * 2 ** (self._tries - 1))
        return random.uniform(ceiling / 2, ceiling)

    def wait(self, seconds: float, error: DefenderError) -> float:
        self._waited += seconds
        if self._waited > self._max_wait_s:
            raise error
        return seconds


def _give_back(slot: Slot, *, sent: bool) -> None:
    """Release `slot`, recording the call if it was `sent`.

    Defender's answer matters more than the budget's bookkeeping: a storage
    failure here is logged, never raised, so a 204 is not lost (it would be
    reported as not found) and the error that ended the call is not hidden.
    A slot left unrecorded stops counting after `pacing.MAX_IN_FLIGHT_S`.
    """
    try:
        slot.release(sent=sent)
    except StorageError as exc:
        logger.warning("could not record a call in the shared budget: %s", exc)


def _new_session() -> requests.Session:
    session = requests.Session()
    retry = Retry(
        total=_CONNECT_RETRIES,
        connect=_CONNECT_RETRIES,
        read=0,
        status=0,
        other=0,
        backoff_factor=0.5,
        allowed_methods=None,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _rows(page: requests.Response) -> list[dict[str, Any]]:
    try:
        rows = page.json()["value"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DefenderError("List answered without a value array") from exc
    if not isinstance(rows, list):
        raise DefenderError("List answered without a value array")
    return rows


def _error_from(response: requests.Response, method: str, url: str) -> DefenderError:
    code, target = _error_fields(response)
    status = response.status_code
    message = f"{method} {_safe(url)} answered {status} {code or response.reason}"
    fields: dict[str, Any] = {"code": code, "target": target, "url": _safe(url)}
    if status == 429:
        retry_after = _retry_after(response.headers.get("Retry-After"))
        return DefenderThrottled(message, retry_after_s=retry_after, **fields)
    if status >= 500:
        return DefenderUnavailable(message, status=status, **fields)
    return DefenderError(message, status=status, **fields)


def _error_fields(response: requests.Response) -> tuple[str | None, str | None]:
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return None, None
    if not isinstance(error, dict):
        return None, None
    code, target = error.get("code"), error.get("target")
    return (
        code if isinstance(code, str) else None,
        target if isinstance(target, str) else None,
    )


def _retry_after(value: str | None) -> float:
    """Retry-After in seconds, as a number or an HTTP date."""
    if not value:
        return DEFAULT_RETRY_AFTER_S
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_S
    return max(0.0, when.timestamp() - time.time())


def _log_response(
    method: str, url: str, response: requests.Response, started: float
) -> None:
    if response.ok:
        logger.info(
            "%s %s %s %.0f ms", method, _path(url), response.status_code, _ms(started)
        )
        return
    code, target = _error_fields(response)
    logger.warning(
        "%s %s %s %s %.0f ms target=%s",
        method,
        _path(url),
        response.status_code,
        code,
        _ms(started),
        target,
    )


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000


def _path(url: str) -> str:
    return urlsplit(url).path


def _safe(url: str) -> str:
    """The URL without its query string, which may carry filters or keys."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
