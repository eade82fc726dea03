"""What happened to each requested indicator.

An ID is `deleted` only when Defender answered a BatchDelete that held it
with 204. IDs Defender does not have are `notFound` (the state the caller
wanted). `forbidden` IDs sit in device groups the app cannot reach; `failed`
IDs carry Defender's status, error code and `target` so support can trace them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import BatchDeleteError, DefenderError

__all__ = ["BatchOutcome", "DeletionReport", "Failure"]


@dataclass(frozen=True)
class Failure:
    """Why an ID was not deleted, as Defender (or the client) told it."""

    id: int
    status: int | None
    code: str | None
    target: str | None
    message: str

    @classmethod
    def from_error(cls, indicator_id: int, error: BatchDeleteError) -> Failure:
        if isinstance(error, DefenderError):
            return cls(indicator_id, error.status, error.code, error.target, str(error))
        return cls(indicator_id, None, type(error).__name__, None, str(error))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "status": self.status,
            "code": self.code,
            "target": self.target,
            "message": self.message,
        }


@dataclass
class BatchOutcome:
    """The settled state of a group of IDs."""

    deleted: list[int] = field(default_factory=list)
    not_found: list[int] = field(default_factory=list)
    forbidden: list[Failure] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)

    def merge(self, other: BatchOutcome) -> None:
        self.deleted.extend(other.deleted)
        self.not_found.extend(other.not_found)
        self.forbidden.extend(other.forbidden)
        self.failed.extend(other.failed)

    def settled_ids(self) -> list[int]:
        """Every ID this outcome accounts for."""
        return [
            *self.deleted,
            *self.not_found,
            *(f.id for f in self.forbidden),
            *(f.id for f in self.failed),
        ]


@dataclass
class DeletionReport:
    """The outcome of a whole request, in the HTTP API's JSON form."""

    requested: int
    outcome: BatchOutcome
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, requested: Iterable[int], outcome: BatchOutcome) -> DeletionReport:
        return cls(requested=len(set(requested)), outcome=outcome)

    @property
    def complete(self) -> bool:
        return not self.outcome.failed

    def to_dict(self) -> dict[str, Any]:
        o = self.outcome
        return {
            **self.extra,
            "counts": {
                "requested": self.requested,
                "deleted": len(o.deleted),
                "notFound": len(o.not_found),
                "forbidden": len(o.forbidden),
                "failed": len(o.failed),
            },
            "deleted": _strings(o.deleted),
            "notFound": _strings(o.not_found),
            "forbidden": [f.to_dict() for f in sorted(o.forbidden, key=_by_id)],
            "failed": [f.to_dict() for f in sorted(o.failed, key=_by_id)],
        }


def _strings(ids: Iterable[int]) -> list[str]:
    return [str(i) for i in sorted(ids)]


def _by_id(failure: Failure) -> int:
    return failure.id
