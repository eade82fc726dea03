"""Indicator IDs as callers send them, made into clean batches.

Defender's IDs are positive integers that its API carries as JSON strings.
Callers send strings, integers, padded strings and duplicates; all of these
are accepted and folded. Anything else rejects the whole request, naming each
bad entry, so that nothing is deleted on the strength of a half-valid list.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .errors import Problem, RequestError

__all__ = [
    "MAX_IDS_PER_BATCH",
    "MAX_REPORTED_PROBLEMS",
    "as_strings",
    "chunk_ids",
    "parse_indicator_ids",
]

MAX_IDS_PER_BATCH = 500
# A list of 100,000 bad entries should not produce a 100,000-line answer.
MAX_REPORTED_PROBLEMS = 50
# Defender's IDs are 64-bit integers; at most 18 significant digits are
# accepted (a bound the OpenAPI pattern can state exactly), far above any ID
# Defender hands out, and no string is turned into an unbounded int.
_MAX_ID_DIGITS = 18
_MAX_ID = 10**_MAX_ID_DIGITS - 1


def parse_indicator_ids(values: Any, *, field: str = "IndicatorIds") -> list[int]:
    """Validate and fold IDs, keeping first-seen order; raises RequestError."""
    if not isinstance(values, list):
        raise RequestError(
            f"{field} must be a JSON array of indicator IDs",
            problems=[Problem(field, f"expected an array, got {_kind(values)}")],
        )
    if not values:
        raise RequestError(
            f"{field} is empty", problems=[Problem(field, "no IDs given")]
        )

    ids: dict[int, None] = {}
    problems: list[Problem] = []
    for index, value in enumerate(values):
        parsed = _parse_one(value)
        if isinstance(parsed, str):
            problems.append(Problem(f"{field}[{index}]", parsed))
        else:
            ids.setdefault(parsed)

    if problems:
        raise RequestError(
            _summary(field, problems), problems=problems[:MAX_REPORTED_PROBLEMS]
        )
    return list(ids)


def chunk_ids(ids: Sequence[int], size: int = MAX_IDS_PER_BATCH) -> Iterator[list[int]]:
    """Yield consecutive batches of at most `size` IDs."""
    if not 1 <= size <= MAX_IDS_PER_BATCH:
        raise ValueError(f"batch size must be 1..{MAX_IDS_PER_BATCH}, got {size}")
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def as_strings(ids: Iterable[int]) -> list[str]:
    """IDs in the form Defender's request bodies use."""
    return [str(value) for value in ids]


def _parse_one(value: Any) -> int | str:
    """The ID, or a message saying why `value` is not one."""
    if isinstance(value, bool):
        return f"{value!r} is a boolean, not an indicator ID"
    if isinstance(value, int):
        return _in_range(value, repr(value))
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return "empty string"
        if not text.isascii() or not text.isdigit():
            return f"{_shorten(value)!r} is not a positive integer"
        significant = text.lstrip("0")
        if len(significant) > _MAX_ID_DIGITS:
            return f"{_shorten(value)!r} is too large to be an indicator ID"
        return _in_range(int(significant or "0"), repr(_shorten(value)))
    return f"{_kind(value)} is not an indicator ID"


def _in_range(value: int, shown: str) -> int | str:
    if value <= 0:
        return f"{shown} is not a positive integer"
    if value > _MAX_ID:
        return f"{shown} is too large to be an indicator ID"
    return value


def _summary(field: str, problems: Sequence[Problem]) -> str:
    shown = ", ".join(p.where for p in problems[:5])
    more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
    return f"{len(problems)} invalid indicator ID(s) in {field}: {shown}{more}"


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _kind(value: Any) -> str:
    kinds = {dict: "an object", list: "an array", float: "a number with a fraction"}
    if value is None:
        return "null"
    return kinds.get(type(value), type(value).__name__)
