"""``GET /api/indicators``: OData ``$filter``, ``$top`` and ``$skip``.

Rows come back in ascending ID order. ``$top`` is the page size (at most
10,000, and 10,000 when absent); whenever rows remain past the page, the
answer carries an absolute ``@odata.nextLink`` with the next ``$skip``.
Other ``$`` options are refused so a client cannot rely on one silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from emulator.auth import can_see
from emulator.context import ApiContext
from emulator.odata import FilterError, Predicate, compile_filter
from emulator.responses import ApiError, Reply

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_TOP", "list_indicators"]

DEFAULT_PAGE_SIZE = 10_000
MAX_TOP = 10_000
_SUPPORTED_OPTIONS = frozenset({"$filter", "$top", "$skip"})
_OK = 200
_BAD_REQUEST = 400


def list_indicators(ctx: ApiContext) -> Reply:
    """List the caller's visible, active indicators; raises ApiError 400."""
    options = ctx.request.args
    top, skip, keep = _query_options(options)

    rows = [row for row in ctx.store.active() if can_see(ctx.caller, row) and keep(row)]
    page = rows[skip : skip + top]

    body: dict[str, Any] = {
        "@odata.context": f"{ctx.base_url}/api/$metadata#Indicators",
        "value": page,
    }
    if skip + len(page) < len(rows):
        body["@odata.nextLink"] = _next_link(ctx, options, skip + len(page), top)
    return Reply(_OK, body)


def _query_options(options: Mapping[str, str]) -> tuple[int, int, Predicate]:
    unsupported = sorted(
        name
        for name in options
        if name.startswith("$") and name not in _SUPPORTED_OPTIONS
    )
    if unsupported:
        raise _bad_request(f"query options {unsupported} are not supported")

    top = _whole_number(options, "$top", DEFAULT_PAGE_SIZE, minimum=1)
    if top > MAX_TOP:
        raise _bad_request(f"$top must be at most {MAX_TOP}")
    skip = _whole_number(options, "$skip", 0, minimum=0)

    text = options.get("$filter")
    if text is None:
        return top, skip, lambda _row: True
    try:
        return top, skip, compile_filter(text)
    except FilterError as exc:
        raise _bad_request(str(exc)) from exc


def _whole_number(
    options: Mapping[str, str], name: str, default: int, *, minimum: int
) -> int:
    text = options.get(name)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or int(text) < minimum:
        raise _bad_request(f"{name} must be a whole number of at least {minimum}")
    return int(text)


def _next_link(ctx: ApiContext, options: Mapping[str, str], skip: int, top: int) -> str:
    query = {"$skip": str(skip), "$top": str(top)}
    if "$filter" in options:
        query["$filter"] = options["$filter"]
    return f"{ctx.base_url}/api/indicators?{urlencode(query, safe='$')}"


def _bad_request(message: str) -> ApiError:
    return ApiError(_BAD_REQUEST, "BadRequest", message)
