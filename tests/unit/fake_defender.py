"""An in-memory Defender at the client seam, for the deletion engine's tests."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from shared.errors import DefenderError, DefenderUnavailable


class FakeDefender:
    """Behaves like BatchDelete: 404 if any ID is missing, then 403."""

    def __init__(
        self,
        present: set[int],
        *,
        forbidden: set[int] = frozenset(),  # type: ignore[assignment]
        partial_failure: str = "none",
        failing_batches: int = 0,
    ) -> None:
        self.present = set(present)
        self.forbidden = set(forbidden)
        self.partial_failure = partial_failure
        self.failing_batches = failing_batches
        self.confirmed: set[int] = set()
        self.batch_calls = 0
        self.list_calls = 0
        self.statuses: list[int] = []

    def batch_delete(self, ids: Sequence[int]) -> None:
        self.batch_calls += 1
        if self.failing_batches:
            self.failing_batches -= 1
            self.statuses.append(503)
            raise DefenderUnavailable(
                "503", status=503, code="ServiceUnavailable", target="t-503"
            )
        missing = [i for i in ids if i not in self.present]
        blocked = [i for i in ids if i in self.forbidden]
        status = 404 if missing else 403 if blocked else 204
        self.statuses.append(status)
        if status == 204 or self.partial_failure == "found":
            for i in ids:
                if i in self.present and i not in self.forbidden:
                    self.present.discard(i)
                    if status == 204:
                        self.confirmed.add(i)
        if status == 404:
            raise DefenderError("404", status=404, code="NotFound", target="t-404")
        if status == 403:
            raise DefenderError("403", status=403, code="Forbidden", target="t-403")

    def list_indicators(self, **_: Any) -> Iterator[dict[str, Any]]:
        self.list_calls += 1
        for i in sorted(self.present):
            groups = ["4127"] if i in self.forbidden else []
            yield {"id": str(i), "rbacGroupIds": groups}
