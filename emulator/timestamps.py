"""UTC timestamps in the shapes Defender writes them.

Creation and update times carry seven fractional digits
(``2026-02-09T13:27:25.2733571Z``); expiry times are whole seconds. Python's
datetime keeps six digits, so the seventh survives a shift only as text.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

__all__ = [
    "API_FRACTION_DIGITS",
    "format_timestamp",
    "parse_timestamp",
    "shift_timestamp",
    "utc_from_epoch",
]

API_FRACTION_DIGITS = 7

_MICRO_DIGITS = 6
_ONE_SECOND_US = 1_000_000
_PARSE_CACHE_SIZE = 65_536
_TIMESTAMP = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})T(?P<clock>\d{2}:\d{2}(?::\d{2})?)"
    r"(?:\.(?P<fraction>\d+))?(?P<zone>Z|[+-]\d{2}:\d{2})"
)


@lru_cache(maxsize=_PARSE_CACHE_SIZE)
def parse_timestamp(text: str) -> datetime:
    """Parse an ISO-8601 time with a zone; raises ValueError otherwise."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError(f"not an ISO-8601 date-time with a zone: {text!r}")

    clock = match["clock"] if match["clock"].count(":") == 2 else f"{match['clock']}:00"
    micros = (match["fraction"] or "")[:_MICRO_DIGITS].ljust(_MICRO_DIGITS, "0")
    zone = "+00:00" if match["zone"] == "Z" else match["zone"]
    parsed = datetime.fromisoformat(f"{match['date']}T{clock}.{micros}{zone}")
    return parsed.astimezone(UTC)


def format_timestamp(moment: datetime, digits: int = API_FRACTION_DIGITS) -> str:
    """Write `moment` in UTC with `digits` fractional digits and a ``Z``."""
    moment = moment.astimezone(UTC)
    whole = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if digits == 0:
        return f"{whole}Z"
    fraction = f"{moment.microsecond:06d}".ljust(digits, "0")[:digits]
    return f"{whole}.{fraction}Z"


def shift_timestamp(text: str, delta: timedelta) -> str:
    """Move a ``...Z`` timestamp by `delta`, keeping its number of digits.

    Whole-second values are rounded up, so a shifted expiry never comes
    earlier than the shift alone would put it. Raises ValueError.
    """
    match = _TIMESTAMP.fullmatch(text)
    if match is None or match["zone"] != "Z":
        raise ValueError(f"not a UTC timestamp ending in Z: {text!r}")

    fraction = match["fraction"] or ""
    moment = parse_timestamp(text) + delta
    if not fraction:
        if moment.microsecond:
            moment += timedelta(microseconds=_ONE_SECOND_US - moment.microsecond)
        return format_timestamp(moment, 0)

    # Digits past the sixth are below datetime's resolution; carry them as text.
    digits = f"{moment.microsecond:06d}{fraction[_MICRO_DIGITS:]}"[: len(fraction)]
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%S')}.{digits}Z"


def utc_from_epoch(seconds: float) -> datetime:
    """Return the aware UTC datetime for epoch `seconds`."""
    return datetime.fromtimestamp(seconds, UTC)
