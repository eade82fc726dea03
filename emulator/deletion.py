"""``POST /api/indicators/BatchDelete`` and ``DELETE /api/indicators/{id}``.

BatchDelete checks, in order: the body and its ``IndicatorIds`` (property
names are case-sensitive), the batch size, each ID's form, then that every
ID exists (404), then the caller's exposure to each device group (403).
Whether a 404 or 403 deleted the other IDs is not documented, so
``partial_failure`` picks: ``"none"`` deletes nothing, ``"found"`` deletes
every ID that exists and may be changed before answering the error.
An indicator the caller's role does not show counts as not found.
"""

from __future__ import annotations

from typing import Any

from emulator.context import ApiContext
from emulator.responses import ApiError, Reply, read_json_object
from emulator.store import normalize_id

__all__ = ["MAX_IDS_PER_BATCH", "batch_delete", "delete_one", "requested_ids"]

MAX_IDS_PER_BATCH = 500
_IDS_PROPERTY = "IndicatorIds"
_PREVIEW_IDS = 10
_NO_CONTENT = 204
_BAD_REQUEST = 400
_FORBIDDEN = 403
_NOT_FOUND = 404


def requested_ids(body: Any) -> list[Any] | None:
    """The raw ``IndicatorIds`` list of a BatchDelete body, if it has one."""
    ids = body.get(_IDS_PROPERTY) if isinstance(body, dict) else None
    return ids if isinstance(ids, list) else None


def batch_delete(ctx: ApiContext) -> Reply:
    """Delete every listed indicator or answer why not; raises ApiError."""
    ids = _valid_ids(read_json_object(ctx.request))

    missing = [i for i in ids if ctx.visible(i) is None]
    found = [row for i in ids if (row := ctx.visible(i)) is not None]
    forbidden = [row["id"] for row in found if not ctx.changeable(row)]
    if missing or forbidden:
        if ctx.config.partial_failure == "found":
            ctx.store.remove(row["id"] for row in found if ctx.changeable(row))
        raise _refusal(missing, forbidden)

    ctx.store.remove(ids)
    return Reply(_NO_CONTENT)


def delete_one(ctx: ApiContext, raw_id: str) -> Reply:
    """Delete one indicator by ID; raises ApiError 400, 403 or 404."""
    indicator_id = normalize_id(raw_id)
    if indicator_id is None:
        raise ApiError(_BAD_REQUEST, "InvalidInput", f"{raw_id!r} is not an ID")

    row = ctx.visible(indicator_id)
    if row is None:
        raise ApiError(_NOT_FOUND, "NotFound", f"indicator {indicator_id} not found")
    if not ctx.changeable(row):
        raise ApiError(_FORBIDDEN, "Forbidden", _not_exposed([indicator_id]))

    ctx.store.remove([indicator_id])
    return Reply(_NO_CONTENT)


def _valid_ids(body: dict[str, Any]) -> list[str]:
    if _IDS_PROPERTY not in body:
        raise ApiError(
            _BAD_REQUEST,
            "MissingRequiredParameter",
            f"the body must have an {_IDS_PROPERTY} property",
        )
    raw = requested_ids(body)
    if raw is None:
        raise ApiError(
            _BAD_REQUEST, "InvalidRequestBody", f"{_IDS_PROPERTY} must be a list"
        )
    if not raw:
        raise ApiError(_BAD_REQUEST, "InvalidInput", f"{_IDS_PROPERTY} is empty")
    if len(raw) > MAX_IDS_PER_BATCH:
        raise ApiError(
            _BAD_REQUEST,
            "MaximumBatchSizeExceeded",
            f"at most {MAX_IDS_PER_BATCH} IDs per call, got {len(raw)}",
        )

    ids = [normalize_id(value) for value in raw]
    invalid = [value for value, parsed in zip(raw, ids, strict=True) if parsed is None]
    if invalid:
        raise ApiError(
            _BAD_REQUEST, "InvalidInput", f"invalid IDs: {_preview(invalid)}"
        )
    return [parsed for parsed in ids if parsed is not None]


def _refusal(missing: list[str], forbidden: list[str]) -> ApiError:
    if missing:
        return ApiError(
            _NOT_FOUND, "NotFound", f"indicators not found: {_preview(missing)}"
        )
    return ApiError(_FORBIDDEN, "Forbidden", _not_exposed(forbidden))


def _not_exposed(ids: list[str]) -> str:
    return f"the app is not exposed to the device groups of {_preview(ids)}"


def _preview(values: list[Any]) -> str:
    shown = ", ".join(repr(value) for value in values[:_PREVIEW_IDS])
    extra = len(values) - _PREVIEW_IDS
    return f"{shown} and {extra} more" if extra > 0 else shown
