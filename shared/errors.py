"""The exceptions this library raises.

::

    BatchDeleteError
    ├── SettingsError          one or more app settings are missing or malformed
    ├── RequestError           a caller's request is unusable (HTTP 400/413/415)
    ├── CredentialError        the client secret or a token could not be had
    ├── StorageError           Table Storage could not be read or written
    └── DefenderError          Defender answered with an error, or not at all
        ├── DefenderUnavailable    connection failures and 5xx after retries
        └── DefenderThrottled      429 after the retry budget was spent

Every error keeps its context as attributes so callers never parse messages.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BatchDeleteError",
    "CredentialError",
    "DefenderError",
    "DefenderThrottled",
    "DefenderUnavailable",
    "Problem",
    "RequestError",
    "SettingsError",
    "StorageError",
]


class BatchDeleteError(Exception):
    """Base class of every error this library raises on purpose."""


class SettingsError(BatchDeleteError):
    """App settings are missing or malformed; `problems` names each one."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        joined = "; ".join(self.problems)
        super().__init__(f"invalid app settings: {joined}")


class Problem:
    """One thing wrong with a request: where it is and what is wrong."""

    __slots__ = ("message", "where")

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"where": self.where, "message": self.message}

    def __repr__(self) -> str:
        return f"Problem({self.where!r}, {self.message!r})"


class RequestError(BatchDeleteError):
    """A caller's request cannot be accepted; nothing was done for it."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        problems: Sequence[Problem] = (),
        code: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.problems = list(problems)
        self.code = code
        self.retry_after_s = retry_after_s


class CredentialError(BatchDeleteError):
    """The client secret could not be read or the token endpoint refused it."""


class StorageError(BatchDeleteError):
    """Table Storage, where jobs and the shared budget live, failed us."""


class DefenderError(BatchDeleteError):
    """Defender answered a call with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        target: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.target = target
        self.url = url


class DefenderUnavailable(DefenderError):
    """No usable answer: connection failures or 5xx after every retry."""


class DefenderThrottled(DefenderError):
    """Still throttled (429) after waiting as long as allowed."""

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float,
        code: str | None = None,
        target: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, status=429, code=code, target=target, url=url)
        self.retry_after_s = retry_after_s
