"""Timer triggers: schedules as the Functions host reads them, and a runner.

A timer's `schedule` in function.json is either an NCRONTAB expression, six
fields with the seconds first (`0 */5 * * * *`), or a TimeSpan interval
(`hh:mm:ss`, optionally `d.hh:mm:ss`). Either may be given through an app
setting as `%NAME%`; `resolve_settings` substitutes those first.

`TimerRunner` fires a callback on a schedule in a background thread, at most
one call at a time: a tick that comes while the previous call still runs is
skipped. It knows nothing of functions; the host passes the callback.

All times are UTC. The host's `WEBSITE_TIME_ZONE` setting is not supported: a
schedule meant for another zone must be written in UTC here.

Exceptions::

    ValueError
     └── ScheduleError    bad expression, or a %SETTING% that is not defined
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from croniter import CroniterError, croniter

__all__ = [
    "CronSchedule",
    "IntervalSchedule",
    "Schedule",
    "ScheduleError",
    "TimerRunner",
    "parse_schedule",
    "resolve_settings",
]

logger = logging.getLogger(__name__)

NCRONTAB_FIELDS = 6
CLASSIC_CRON_FIELDS = 5
# A tick handled later than this after its due time is reported as past due.
PAST_DUE_TOLERANCE = timedelta(seconds=1)

_SETTING = re.compile(r"%([^%\s]+)%")
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$")


class ScheduleError(ValueError):
    """A timer schedule that cannot be used."""


class Schedule(Protocol):
    """When a timer fires next."""

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (timezone-aware)."""
        ...


@dataclass(frozen=True)
class CronSchedule:
    """An NCRONTAB expression with seconds first (or a five-field cron)."""

    expression: str

    def next_after(self, moment: datetime) -> datetime:
        """The first matching second strictly after `moment`."""
        with_seconds = len(self.expression.split()) == NCRONTAB_FIELDS
        cron = croniter(self.expression, moment, second_at_beginning=with_seconds)
        result: datetime = cron.get_next(datetime)
        return result


@dataclass(frozen=True)
class IntervalSchedule:
    """A fixed TimeSpan interval between occurrences."""

    interval: timedelta

    def next_after(self, moment: datetime) -> datetime:
        """`moment` plus the interval."""
        return moment + self.interval


def resolve_settings(expression: str, *settings: Mapping[str, str]) -> str:
    """Replace each `%NAME%` by the first of `settings` that defines NAME.

    Raises ScheduleError naming the first setting that none defines.
    """

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        for source in settings:
            if name in source:
                return source[name]
        raise ScheduleError(f"app setting {name!r} is not defined")

    return _SETTING.sub(lookup, expression)


def parse_schedule(expression: str) -> Schedule:
    """Parse a resolved schedule; raises ScheduleError if it is not valid."""
    text = expression.strip()
    timespan = _TIMESPAN.match(text)
    if timespan is not None:
        return _parse_timespan(timespan)

    # The host reads six fields (seconds first); five-field cron expressions
    # are accepted too, with a one-minute resolution.
    fields = len(text.split())
    if fields not in (NCRONTAB_FIELDS, CLASSIC_CRON_FIELDS):
        raise ScheduleError(
            f"schedule {expression!r} has {fields} fields; NCRONTAB needs "
            f"{NCRONTAB_FIELDS} (second minute hour day month day-of-week)"
        )

    schedule = CronSchedule(text)
    try:
        schedule.next_after(datetime(2000, 1, 1, tzinfo=UTC))
    except (CroniterError, ValueError, KeyError) as exc:
        raise ScheduleError(f"schedule {expression!r} is not valid: {exc}") from exc
    return schedule


def _parse_timespan(match: re.Match[str]) -> IntervalSchedule:
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    interval = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if hours > 23 or minutes > 59 or seconds > 59 or not interval:
        raise ScheduleError(f"TimeSpan schedule {match.group(0)!r} is not valid")
    return IntervalSchedule(interval)


def _utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def _fired_reason(moment: datetime) -> str:
    """The host's reason text for a timer tick at `moment`."""
    return f"Timer fired at {moment.isoformat()}"


class TimerRunner:
    """Calls `invoke(past_due, reason)` on `schedule`, one call at a time.

    `invoke` reports its own failures; an exception from it only ends that
    call. `name` is used for thread names and log lines.
    """

    def __init__(
        self,
        name: str,
        schedule: Schedule,
        *,
        run_on_startup: bool,
        invoke: Callable[[bool, str], object],
    ) -> None:
        self.name = name
        self.schedule = schedule
        self._run_on_startup = run_on_startup
        self._invoke = invoke
        self._busy = threading.Lock()
        self._stopping = threading.Event()
        self._scheduler: threading.Thread | None = None
        self._worker: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"TimerRunner({self.name!r}, {self.schedule!r})"

    def start(self) -> None:
        """Start the schedule (calling at once first when run_on_startup)."""
        if self._scheduler is not None:
            return
        self._stopping.clear()
        if self._run_on_startup:
            self.launch(past_due=False, reason=_fired_reason(_utc_now()))
        self._scheduler = threading.Thread(
            target=self._loop, name=f"timer-{self.name}", daemon=True
        )
        self._scheduler.start()

    def stop(self, timeout: float) -> None:
        """Stop ticking; wait up to `timeout` s for a running call to end."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in (self._scheduler, self._worker):
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        if self._worker is not None and self._worker.is_alive():
            logger.warning("%s still running after %.0fs; left", self.name, timeout)
        self._scheduler = None

    def launch(self, *, past_due: bool, reason: str) -> bool:
        """Start a call in the background unless one is running; True if started."""
        if not self._busy.acquire(blocking=False):
            logger.warning(
                "Skipping %s: its previous invocation is still running", self.name
            )
            return False
        self._worker = threading.Thread(
            target=self._call_and_release,
            args=(past_due, reason),
            name=f"invoke-{self.name}",
            daemon=True,
        )
        self._worker.start()
        return True

    def run_now(self, reason: str, *, wait: float) -> None:
        """Call in this thread once a running call has ended; errors propagate.

        Raises TimeoutError if the running call lasts more than `wait` s.
        """
        if not self._busy.acquire(timeout=wait):
            raise TimeoutError(f"{self.name} still running after {wait:.0f}s")
        try:
            self._invoke(False, reason)
        finally:
            self._busy.release()

    def _call_and_release(self, past_due: bool, reason: str) -> None:
        try:
            self._invoke(past_due, reason)
        except Exception:
            # `invoke` has logged the failure; a background call has nowhere
            # else to send it, and the schedule must go on.
            logger.debug("%s failed; see the error logged for it", self.name)
        finally:
            self._busy.release()

    def _loop(self) -> None:
        due = self.schedule.next_after(_utc_now())
        while not self._stopping.wait(_seconds_until(due)):
            now = _utc_now()
            if now < due:
                continue
            late = now - due > PAST_DUE_TOLERANCE
            self.launch(past_due=late, reason=_fired_reason(now))
            # Ticks missed while late are dropped, not run in a burst.
            due = self.schedule.next_after(due)
            if due <= now:
                due = self.schedule.next_after(now)


def _seconds_until(moment: datetime) -> float:
    return max(0.0, (moment - _utc_now()).total_seconds())
