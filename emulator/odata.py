"""Evaluate Defender's ``$filter`` expressions over indicator dicts.

odata-query's lexer and parser turn the text into a syntax tree; this module
walks the tree once, checks fields and literal types, and builds a predicate.

Semantics, following OData v4 where Defender's behaviour is not documented:

- Only the fields Defender documents as filterable may appear; anything else
  (``id`` included) is an error, as are arithmetic, navigation and lambdas.
- ``eq``/``ne`` with ``null`` test for null. ``lt``/``gt`` with a null operand
  are false; ``le``/``ge`` are true only when both operands are null.
- ``startswith`` of a null is null, and ``not``/``and``/``or`` use three-valued
  logic; a row is kept only when the whole filter is true.
- Date-time fields compare as date-times with date-time, date or quoted
  ISO-8601 literals. Strings compare case-sensitively.
- ``rbacGroupNames``/``rbacGroupIds`` are lists: ``eq 'x'`` means the list
  holds ``'x'``, ``ne`` that it does not, ``in`` that it holds any of the
  values, and ``startswith`` that some element starts with the prefix.
- A one-item ``in ('a')`` is accepted, as OData allows, although odata-query
  itself only parses the ``('a',)`` spelling.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from odata_query import ast
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser
from sly.lex import Token

from emulator.timestamps import parse_timestamp

__all__ = [
    "FILTERABLE_FIELDS",
    "MAX_NESTING",
    "FilterError",
    "Predicate",
    "compile_filter",
]

Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]
_Condition = Callable[[Row], bool | None]
_Getter = Callable[[Row], Any]


class FilterError(ValueError):
    """The filter does not parse, or uses a field or form Defender rejects."""


class _Kind(enum.Enum):
    STRING = "string"
    DATETIME = "date-time"
    BOOLEAN = "boolean"
    COLLECTION = "list of strings"
    NULL = "null"


_FIELD_KINDS: Mapping[str, _Kind] = {
    "application": _Kind.STRING,
    "createdByDisplayName": _Kind.STRING,
    "expirationTime": _Kind.DATETIME,
    "generateAlert": _Kind.BOOLEAN,
    "title": _Kind.STRING,
    "rbacGroupNames": _Kind.COLLECTION,
    "rbacGroupIds": _Kind.COLLECTION,
    "indicatorValue": _Kind.STRING,
    "indicatorType": _Kind.STRING,
    "creationTimeDateTimeUtc": _Kind.DATETIME,
    "createdBy": _Kind.STRING,
    "action": _Kind.STRING,
    "severity": _Kind.STRING,
}
FILTERABLE_FIELDS = frozenset(_FIELD_KINDS)

_ORDERINGS: Mapping[type[ast._Comparator], Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_INCLUSIVE_ORDERINGS = (ast.LtE, ast.GtE)
_SUPPORTED_FUNCTIONS = frozenset({"startswith"})
# Deeper filters are refused rather than risk Python's recursion limit.
MAX_NESTING = 100


@dataclass(frozen=True)
class _Operand:
    kind: _Kind
    get: _Getter
    literal: str | None = None


def compile_filter(text: str) -> Predicate:
    """Build a predicate from a ``$filter`` value; raises FilterError."""
    condition = _condition(_parse(text))

    def keep(row: Row) -> bool:
        return condition(row) is True

    return keep


def _parse(text: str) -> Any:
    try:
        tokens = _pad_single_item_lists(list(ODataLexer().tokenize(text)))
        return ODataParser().parse(iter(tokens))
    except ODataException as exc:
        raise FilterError(f"invalid $filter: {exc}") from exc


def _pad_single_item_lists(tokens: list[Any]) -> list[Any]:
    padded = list(tokens)
    # Walk backwards so an inserted comma never shifts a position still to visit.
    for position in reversed(range(len(padded))):
        if padded[position].type == "IN":
            closing = _single_item_list_end(padded, position + 1)
            if closing is not None:
                padded.insert(closing, _comma_before(padded[closing]))
    return padded


def _single_item_list_end(tokens: Sequence[Any], start: int) -> int | None:
    while start < len(tokens) and tokens[start].type == "WS":
        start += 1
    if start >= len(tokens) or tokens[start].type != "(":
        return None

    depth = 0
    for position in range(start, len(tokens)):
        kind = tokens[position].type
        if kind == "(":
            depth += 1
        elif kind == ")":
            depth -= 1
            if depth == 0:
                return position
        elif kind == "," and depth == 1:
            return None
    return None


def _comma_before(token: Any) -> Any:
    comma = Token()
    comma.type = comma.value = ","
    comma.lineno, comma.index = token.lineno, token.index
    return comma


def _condition(node: Any, depth: int = 0) -> _Condition:
    if depth > MAX_NESTING:
        raise FilterError(f"the filter nests deeper than {MAX_NESTING} levels")
    if isinstance(node, ast.Compare):
        return _comparison(node)
    if isinstance(node, ast.BoolOp):
        return _boolean(node, depth)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return _negation(_condition(node.operand, depth + 1))
    if isinstance(node, ast.Call):
        return _call(node)

    operand = _operand(node)
    if operand.kind is not _Kind.BOOLEAN:
        raise FilterError(f"a {operand.kind.value} is not a condition")
    return operand.get


def _boolean(node: ast.BoolOp, depth: int) -> _Condition:
    # A long `a or b or c ...` chain is one flat list, not a deep tree, so
    # neither compiling nor evaluating it recurses once per term.
    chain_op = type(node.op)
    conditions: list[_Condition] = []
    pending: list[Any] = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, ast.BoolOp) and type(current.op) is chain_op:
            pending.extend((current.right, current.left))
        else:
            conditions.append(_condition(current, depth + 1))
    decisive = chain_op is ast.Or

    def combined(row: Row) -> bool | None:
        unknown = False
        for condition in conditions:
            value = condition(row)
            if value is decisive:
                return decisive
            unknown = unknown or value is None
        return None if unknown else not decisive

    return combined


def _negation(inner: _Condition) -> _Condition:
    def negated(row: Row) -> bool | None:
        value = inner(row)
        return None if value is None else not value

    return negated


def _comparison(node: ast.Compare) -> _Condition:
    left = _operand(node.left)
    if isinstance(node.comparator, ast.In):
        return _membership(left, node.right)

    right = _operand(node.right)
    left, right = _coerced(left, right), _coerced(right, left)
    _check_comparable(left, right, node.comparator)
    if isinstance(node.comparator, ast.Eq):
        return lambda row: _equal(left.get(row), right.get(row))
    if isinstance(node.comparator, ast.NotEq):
        return lambda row: not _equal(left.get(row), right.get(row))

    inclusive = isinstance(node.comparator, _INCLUSIVE_ORDERINGS)
    compare = _ORDERINGS[type(node.comparator)]

    def ordered(row: Row) -> bool:
        first, second = left.get(row), right.get(row)
        if first is None or second is None:
            return inclusive and first is None and second is None
        return compare(first, second)

    return ordered


def _membership(left: _Operand, items: Any) -> _Condition:
    if not isinstance(items, ast.List):
        raise FilterError("'in' needs a parenthesised list of values")

    values = [_coerced(_operand(item), left) for item in items.val]
    for value in values:
        _check_comparable(left, value, ast.Eq())
    getters = [value.get for value in values]
    return lambda row: any(_equal(left.get(row), get(row)) for get in getters)


def _equal(first: Any, second: Any) -> bool:
    if isinstance(first, tuple) and not isinstance(second, tuple):
        return second in first
    if isinstance(second, tuple) and not isinstance(first, tuple):
        return first in second
    return bool(first == second)


def _check_comparable(left: _Operand, right: _Operand, comparator: Any) -> None:
    kinds = {left.kind, right.kind}
    ordering = not isinstance(comparator, ast.Eq | ast.NotEq)
    if _Kind.COLLECTION in kinds and ordering:
        raise FilterError("list fields support only eq, ne, in and startswith")
    if _Kind.NULL in kinds or len(kinds) == 1:
        return
    if kinds == {_Kind.COLLECTION, _Kind.STRING}:
        return
    raise FilterError(f"cannot compare a {left.kind.value} with a {right.kind.value}")


def _coerced(operand: _Operand, other: _Operand) -> _Operand:
    """Read a quoted literal as a date-time when compared with a date-time."""
    if other.kind is not _Kind.DATETIME or operand.literal is None:
        return operand
    return _constant(_Kind.DATETIME, _datetime_literal(operand.literal))


def _call(node: ast.Call) -> _Condition:
    name = node.func.name
    if name not in _SUPPORTED_FUNCTIONS:
        raise FilterError(f"function {name}() is not supported")

    subject, prefix = (_operand(arg) for arg in node.args)
    if subject.kind not in (_Kind.STRING, _Kind.COLLECTION, _Kind.NULL):
        raise FilterError("startswith() needs a string or list field first")
    if prefix.kind not in (_Kind.STRING, _Kind.NULL):
        raise FilterError("startswith() needs a string prefix")

    def starts(row: Row) -> bool | None:
        value, start = subject.get(row), prefix.get(row)
        if value is None or start is None:
            return None
        if isinstance(value, tuple):
            return any(item.startswith(start) for item in value)
        return bool(value.startswith(start))

    return starts


def _operand(node: Any) -> _Operand:
    if isinstance(node, ast.Identifier):
        return _field(node)
    if isinstance(node, ast.String):
        return _constant(_Kind.STRING, node.val, literal=node.val)
    if isinstance(node, ast.Boolean):
        return _constant(_Kind.BOOLEAN, node.py_val)
    if isinstance(node, ast.Null):
        return _constant(_Kind.NULL, None)
    if isinstance(node, ast.DateTime):
        return _constant(_Kind.DATETIME, _datetime_literal(node.val))
    if isinstance(node, ast.Date):
        return _constant(_Kind.DATETIME, _date_literal(node.val))
    raise FilterError(f"{type(node).__name__} expressions are not supported")


def _field(node: ast.Identifier) -> _Operand:
    name = ".".join((*node.namespace, node.name))
    kind = _FIELD_KINDS.get(name)
    if kind is None:
        raise FilterError(f"'{name}' is not a property that can be filtered on")

    if kind is _Kind.DATETIME:
        return _Operand(kind, lambda row: _row_datetime(row.get(name)))
    if kind is _Kind.COLLECTION:
        return _Operand(kind, lambda row: tuple(row.get(name) or ()))
    return _Operand(kind, lambda row: row.get(name))


def _constant(kind: _Kind, value: Any, *, literal: str | None = None) -> _Operand:
    return _Operand(kind, lambda _row: value, literal)


def _datetime_literal(text: str) -> datetime:
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise FilterError(f"invalid date-time literal {text!r}") from exc


def _date_literal(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError as exc:
        raise FilterError(f"invalid date literal {text!r}") from exc


def _row_datetime(value: Any) -> datetime | None:
    return None if value is None else parse_timestamp(str(value))
