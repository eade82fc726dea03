"""What ends a command early, and the exit status each outcome gives.

::

    0   the job finished and every ID was deleted or already gone
    1   some IDs failed or were forbidden, or Defender failed us
    2   bad input or settings: nothing was started
    130 interrupted while following a job, which carries on without us
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "EXIT_FAILURES",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "FollowInterrupted",
    "InputError",
]

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class InputError(Exception):
    """What the operator gave cannot be used; `lines` says each problem."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = list(lines)
        super().__init__("; ".join(self.lines))


class FollowInterrupted(Exception):
    """The operator stopped following `job_id`; the job itself goes on."""

    def __init__(self, job_id: str, tenant_id: str | None) -> None:
        self.job_id = job_id
        self.tenant_id = tenant_id
        super().__init__(f"stopped following job {job_id}")
