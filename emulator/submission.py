"""``POST /api/indicators`` (Submit) and ``POST /api/indicators/import``.

Submit updates the indicator with the same type, value and device groups
that the caller can see, and creates one otherwise, with an ID above every ID
the tenant has held. The calling app becomes ``createdBy``; ``application``
defaults to its display name and, as in Defender, is set at creation only.
Import runs Submit per item and reports each item's outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emulator.context import ApiContext
from emulator.responses import ApiError, Reply, read_json_object
from emulator.store import MAX_ACTIVE_INDICATORS
from emulator.timestamps import format_timestamp, parse_timestamp, utc_from_epoch

__all__ = [
    "ACTIONS",
    "INDICATOR_TYPES",
    "MAX_IMPORT_BATCH",
    "SEVERITIES",
    "import_indicators",
    "submit",
]

INDICATOR_TYPES = frozenset(
    {
        "FileSha1",
        "FileSha256",
        "FileMd5",
        "CertificateThumbprint",
        "IpAddress",
        "DomainName",
        "Url",
    }
)
ACTIONS = frozenset(
    {"Allowed", "Audit", "Block", "BlockAndRemediate", "Warn", "Alert", "AlertAndBlock"}
)
SEVERITIES = frozenset({"Informational", "Low", "Medium", "High"})
MAX_IMPORT_BATCH = 500

_REQUIRED = ("indicatorValue", "indicatorType", "action", "title", "description")
_OPTIONAL_TEXT = ("application", "recommendedActions", "educateUrl", "externalID")
_ENUMS: Mapping[str, frozenset[str]] = {
    "indicatorType": INDICATOR_TYPES,
    "action": ACTIONS,
    "severity": SEVERITIES,
}
# Fields an update may change; `application` and the creator are kept.
_UPDATABLE = (
    "action",
    "expirationTime",
    "severity",
    "title",
    "description",
    "recommendedActions",
    "generateAlert",
    "externalID",
    "educateUrl",
)
_DEFAULT_SEVERITY = "Informational"
_IMPORT_PROPERTY = "Indicators"
_OK = 200
_BAD_REQUEST = 400
_FORBIDDEN = 403


def submit(ctx: ApiContext) -> Reply:
    """Create or update one indicator; raises ApiError."""
    row = _upsert(ctx, read_json_object(ctx.request))
    context = f"{ctx.base_url}/api/$metadata#Indicators/$entity"
    return Reply(_OK, {"@odata.context": context, **row})


def import_indicators(ctx: ApiContext) -> Reply:
    """Submit up to 500 indicators, reporting each; raises ApiError for the batch."""
    items = _import_items(read_json_object(ctx.request))
    results = [_import_one(ctx, item) for item in items]
    context = f"{ctx.base_url}/api/$metadata#Collection(ImportIndicatorResult)"
    return Reply(_OK, {"@odata.context": context, "value": results})


def _import_items(body: dict[str, Any]) -> list[Any]:
    if _IMPORT_PROPERTY not in body:
        raise ApiError(
            _BAD_REQUEST,
            "MissingRequiredParameter",
            f"the body must have an {_IMPORT_PROPERTY} property",
        )
    items = body[_IMPORT_PROPERTY]
    if not isinstance(items, list):
        raise _bad("InvalidRequestBody", f"{_IMPORT_PROPERTY} must be a list")
    if not items:
        raise _bad("InvalidInput", f"{_IMPORT_PROPERTY} is empty")
    if len(items) > MAX_IMPORT_BATCH:
        raise _bad(
            "MaximumBatchSizeExceeded",
            f"at most {MAX_IMPORT_BATCH} indicators per call, got {len(items)}",
        )
    return items


def _import_one(ctx: ApiContext, item: Any) -> dict[str, Any]:
    value = item.get("indicatorValue") if isinstance(item, dict) else None
    try:
        if not isinstance(item, dict):
            raise _bad("InvalidInput", "each indicator must be a JSON object")
        row = _upsert(ctx, item)
    except ApiError as exc:
        return {
            "id": None,
            "indicator": value,
            "isFailed": True,
            "failureReason": exc.message,
        }
    return {
        "id": row["id"],
        "indicator": row["indicatorValue"],
        "isFailed": False,
        "failureReason": None,
    }


def _upsert(ctx: ApiContext, fields: Mapping[str, Any]) -> dict[str, Any]:
    wanted = _validated(ctx, fields)
    if not ctx.changeable(wanted):
        raise ApiError(
            _FORBIDDEN, "Forbidden", "the app is not exposed to those device groups"
        )

    existing = _existing(ctx, wanted)
    if existing is None and len(ctx.store) >= MAX_ACTIVE_INDICATORS:
        raise _bad(
            "BadRequest", f"the tenant already has {MAX_ACTIVE_INDICATORS} indicators"
        )

    row = _created(ctx, wanted) if existing is None else _updated(ctx, existing, wanted)
    ctx.store.put(row)
    return row


def _validated(ctx: ApiContext, fields: Mapping[str, Any]) -> dict[str, Any]:
    missing = [name for name in _REQUIRED if fields.get(name) in (None, "")]
    if missing:
        raise _bad("MissingRequiredParameter", f"missing required fields: {missing}")
    _check_text_fields(fields)

    wanted = {name: fields[name] for name in _REQUIRED}
    wanted.update({name: fields.get(name) for name in _OPTIONAL_TEXT})
    wanted["severity"] = fields.get("severity") or _DEFAULT_SEVERITY
    wanted["generateAlert"] = _flag(fields.get("generateAlert", False))
    wanted["expirationTime"] = _expiry(ctx, fields.get("expirationTime"))
    wanted["rbacGroupNames"], wanted["rbacGroupIds"] = _groups(
        ctx, fields.get("rbacGroupNames")
    )
    return wanted


def _check_text_fields(fields: Mapping[str, Any]) -> None:
    for name in (*_REQUIRED, *_OPTIONAL_TEXT, "severity"):
        value = fields.get(name)
        if value is not None and not isinstance(value, str):
            raise _bad("InvalidInput", f"{name} must be a string")
    for name, allowed in _ENUMS.items():
        value = fields.get(name)
        if value is not None and value not in allowed:
            raise _bad("InvalidInput", f"{name} must be one of {sorted(allowed)}")


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad("InvalidInput", "generateAlert must be true or false")
    return value


def _expiry(ctx: ApiContext, value: Any) -> str | None:
    if value is None:
        return None
    try:
        moment = parse_timestamp(str(value))
    except ValueError as exc:
        raise _bad(
            "InvalidInput", f"expirationTime {value!r} is not a date-time"
        ) from exc
    if moment.timestamp() <= ctx.now:
        raise _bad("InvalidInput", "expirationTime must be in the future")
    return format_timestamp(moment, 0 if moment.microsecond == 0 else 7)


def _groups(ctx: ApiContext, names: Any) -> tuple[list[str], list[str]]:
    if names is None:
        return [], []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _bad("InvalidInput", "rbacGroupNames must be a list of strings")
    unknown = [name for name in names if name not in ctx.config.device_groups]
    if unknown:
        raise _bad("InvalidInput", f"unknown device groups: {unknown}")
    return list(names), [ctx.config.device_groups[name] for name in names]


def _existing(ctx: ApiContext, wanted: Mapping[str, Any]) -> dict[str, Any] | None:
    groups = sorted(wanted["rbacGroupIds"])
    for row in ctx.store.find(wanted["indicatorType"], wanted["indicatorValue"]):
        if ctx.visible(row["id"]) and sorted(row.get("rbacGroupIds") or []) == groups:
            return row
    return None


def _created(ctx: ApiContext, wanted: Mapping[str, Any]) -> dict[str, Any]:
    app_id = ctx.caller.app_id
    app_name = ctx.config.app_names.get(app_id, app_id)
    now = format_timestamp(utc_from_epoch(ctx.now))
    return {
        "id": ctx.store.next_id(),
        "indicatorValue": wanted["indicatorValue"],
        "indicatorType": wanted["indicatorType"],
        "action": wanted["action"],
        "application": wanted["application"] or app_name,
        "sourceType": "AadApp",
        "createdBy": app_id,
        "createdByDisplayName": app_name,
        "createdBySource": app_name,
        "creationTimeDateTimeUtc": now,
        "expirationTime": wanted["expirationTime"],
        "lastUpdateTime": now,
        "lastUpdatedBy": app_id,
        "severity": wanted["severity"],
        "title": wanted["title"],
        "description": wanted["description"],
        "recommendedActions": wanted["recommendedActions"],
        "rbacGroupNames": wanted["rbacGroupNames"],
        "rbacGroupIds": wanted["rbacGroupIds"],
        "generateAlert": wanted["generateAlert"],
        "externalID": wanted["externalID"],
        "educateUrl": wanted["educateUrl"],
    }


def _updated(
    ctx: ApiContext, existing: Mapping[str, Any], wanted: Mapping[str, Any]
) -> dict[str, Any]:
    row = dict(existing)
    row.update({name: wanted[name] for name in _UPDATABLE})
    row["lastUpdateTime"] = format_timestamp(utc_from_epoch(ctx.now))
    row["lastUpdatedBy"] = ctx.caller.app_id
    return row


def _bad(code: str, message: str) -> ApiError:
    return ApiError(_BAD_REQUEST, code, message)
