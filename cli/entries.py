"""Indicator IDs and IOC values as operators list them, with where each came from.

A file holds one entry per line, or CSV rows (comma, semicolon or tab, told
by the first row). Blank lines and lines starting with ``#`` are skipped. If
the first row names one of the expected columns (``id`` or ``IndicatorId``
for IDs, ``value`` or ``indicatorValue`` for values, in any case) it is a
header and that column is read (spaces, ``_`` and ``-`` in its name are
ignored); otherwise IDs come from the first column and
values from the whole line, because a URL may itself hold a comma. ``-``
reads standard input.

The library validates what is read and names a bad entry by its position
(``IndicatorIds[3]``); `describe_problems` turns that back into the file's
line number or the argument's position.
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import RequestError

__all__ = [
    "ID_COLUMNS",
    "STDIN_PATH",
    "VALUE_COLUMNS",
    "Entries",
    "describe_problems",
    "entries_from_arguments",
    "read_entries",
]

ID_COLUMNS = ("id", "indicatorid")
VALUE_COLUMNS = ("value", "indicatorvalue")
STDIN_PATH = "-"
_COMMENT = "#"
_DELIMITERS = (",", ";", "\t")
_DEFAULT_DELIMITER = ","
_BOM = "\ufeff"
_POSITION = re.compile(r"\[(\d+)\]$")
# "Indicator ID", "indicator_id" and "IndicatorId" all name the same column.
_HEADER_NOISE = re.compile(r"[\s_-]+")
# The request fields the library names in its problems, as the options that
# set them on this command line.
_OPTION_FOR_FIELD = {
    "reason": "--reason",
    "requestedBy": "--requested-by",
    "indicatorType": "--type",
    "tenantId": "--tenant",
}


@dataclass(frozen=True)
class Entries:
    """Entries in the order given, each with a description of its origin."""

    source: str
    items: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)

    def __add__(self, other: Entries) -> Entries:
        return Entries(
            f"{self.source} and {other.source}",
            self.items + other.items,
            self.origins + other.origins,
        )


def read_entries(path: str, columns: Sequence[str], *, split_bare: bool) -> Entries:
    """Entries of a file (or stdin for ``-``); raises OSError.

    `split_bare` reads the first CSV column of rows without a header; when
    false such rows are taken whole.
    """
    if path == STDIN_PATH:
        return _parse(sys.stdin.read().splitlines(), "stdin", columns, split_bare)
    text = Path(path).read_text(encoding="utf-8-sig")
    return _parse(text.splitlines(), path, columns, split_bare)


def entries_from_arguments(values: Sequence[str]) -> Entries:
    """Entries given as command-line arguments, numbered from 1."""
    origins = [f"argument {n}" for n in range(1, len(values) + 1)]
    return Entries("the command line", list(values), origins)


def describe_problems(error: RequestError, entries: Entries) -> list[str]:
    """The library's problems, each placed where the operator can find it."""
    lines = []
    for problem in error.problems:
        match = _POSITION.search(problem.where)
        index = int(match.group(1)) if match else None
        if index is not None and index < len(entries.origins):
            lines.append(f"{entries.origins[index]}: {problem.message}")
        else:
            where = _OPTION_FOR_FIELD.get(problem.where, problem.where)
            lines.append(f"{where}: {problem.message}")
    return lines or [error.message]


def _parse(
    lines: Iterable[str], source: str, columns: Sequence[str], split_bare: bool
) -> Entries:
    numbered = [
        (number, text.lstrip(_BOM) if number == 1 else text)
        for number, text in enumerate(lines, start=1)
    ]
    rows = [(n, text) for n, text in numbered if _holds_data(text)]
    if not rows:
        return Entries(source)

    delimiter = _delimiter(rows[0][1])
    column = _header_column(_cells(rows[0][1], delimiter), columns)
    if column is not None:
        rows = rows[1:]
    items = [_item(text, delimiter, column, split_bare) for _, text in rows]
    origins = [f"{source} line {number}" for number, _ in rows]
    return Entries(source, items, origins)


def _holds_data(text: str) -> bool:
    stripped = text.strip()
    return bool(stripped) and not stripped.startswith(_COMMENT)


def _delimiter(first_row: str) -> str:
    return next((d for d in _DELIMITERS if d in first_row), _DEFAULT_DELIMITER)


def _cells(text: str, delimiter: str) -> list[str]:
    return next(csv.reader([text], delimiter=delimiter), [])


def _header_column(cells: Sequence[str], columns: Sequence[str]) -> int | None:
    names = [_HEADER_NOISE.sub("", cell).lower() for cell in cells]
    for column in columns:
        if column in names:
            return names.index(column)
    return None


def _item(text: str, delimiter: str, column: int | None, split_bare: bool) -> str:
    if column is None and not split_bare:
        return text
    cells = _cells(text, delimiter)
    wanted = column or 0
    # A short row leaves the entry empty, which the library reports.
    return cells[wanted] if wanted < len(cells) else ""
