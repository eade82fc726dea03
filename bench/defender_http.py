"""The two delete calls as the public tools make them: plain HTTP, no pacing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import requests

__all__ = ["NO_ANSWER", "Answer", "DefenderHttp"]

NO_ANSWER = 0
TIMEOUT_S = (5.0, 60.0)
# What a tool waits when a 429 carries no usable Retry-After.
DEFAULT_RETRY_AFTER_S = 1.0


@dataclass(frozen=True)
class Answer:
    """Defender's status (`NO_ANSWER` when the call failed) and Retry-After."""

    status: int
    retry_after_s: float = DEFAULT_RETRY_AFTER_S


class DefenderHttp:
    """BatchDelete and single DELETE against one API host, with one token."""

    def __init__(self, api_url: str, token: str) -> None:
        self._api_url = api_url.rstrip("/")
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"

    def __repr__(self) -> str:
        return f"DefenderHttp({self._api_url!r}, token='***')"

    def batch_delete(self, ids: Sequence[int]) -> Answer:
        body = {"IndicatorIds": [str(i) for i in ids]}
        return self._send("POST", "/api/indicators/BatchDelete", body)

    def delete(self, indicator_id: int) -> Answer:
        return self._send("DELETE", f"/api/indicators/{indicator_id}", None)

    def close(self) -> None:
        self._session.close()

    def _send(self, method: str, path: str, body: object | None) -> Answer:
        try:
            response = self._session.request(
                method, self._api_url + path, json=body, timeout=TIMEOUT_S
            )
        except requests.RequestException:
            return Answer(NO_ANSWER)
        return Answer(response.status_code, _retry_after(response))


def _retry_after(response: requests.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return DEFAULT_RETRY_AFTER_S
