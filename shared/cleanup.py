"""The scheduled cleanup policy: which indicators a run may delete, and why.

A policy is JSON (the ``CLEANUP_POLICY`` setting). Every key but ``rules`` is
optional; unknown keys are errors, so a typo never widens or narrows a run
silently. Example, with each default spelled out::

    {
      "owners": {"applications": ["ioc-batch-delete"], "creators": []},
      "includeAllowed": false,
      "indicatorTypes": ["IpAddress", "DomainName", "Url"],
      "actions": ["Block", "Audit"],
      "rules": {"olderThanDays": 180, "noExpiryOlderThanDays": 90,
                "keepBelow": 14000},
      "maxPerRun": 1000,
      "mode": "preview",
      "nextRunWithinHours": 24
    }

- ``owners``: an indicator is owned when its ``application`` is one of
  ``applications`` (compared exactly, as Defender's ``$filter`` does) or its
  ``createdBy`` is one of ``creators``. When ``creators`` is absent it is the
  app's own client ID. GUIDs among the creators are compared in lower case;
  other creators exactly. Portal-made indicators (``application`` null) are
  owned only when ``creators`` is given and lists their creator's address.
  Nothing unowned is ever selected.
- ``includeAllowed`` (default false): indicators whose action is ``Allowed``
  are protected unless this is true.
- ``indicatorTypes``, ``actions``: when given, only indicators of these types
  and actions are selected. Values are Defender's enums (legacy ``Alert`` and
  ``AlertAndBlock`` included); listing ``Allowed`` requires
  ``includeAllowed``.
- ``rules``, at least one of: ``olderThanDays`` (created more than N days
  ago), ``noExpiryOlderThanDays`` (no expiry and created more than N days
  ago), ``keepBelow`` (while the tenant would hold more than N indicators at
  the next run, the oldest owned, eligible ones are selected until it would
  hold N; unowned ones are never touched even if the tenant stays above N).
- ``maxPerRun`` (default 1000, at most 15000): candidates beyond it wait for
  the next run.
- ``mode``: ``"preview"`` (the default, so a new policy deletes nothing until
  someone reads its preview and opts in) or ``"delete"``.
- ``nextRunWithinHours`` (default 24): indicators whose ``expirationTime``
  comes before the next run are left alone; Defender removes them itself, and
  deleting them only races that removal (a BatchDelete 404) and spends calls.

`select` is pure and deterministic. Each listed indicator is counted once:
as a candidate, under the first skip reason that applies (``malformed``,
``notOwned``, ``allowedProtected``, ``filteredOut``, ``expiresBeforeNextRun``,
``overRunCap``, in that order), or as ``kept`` (eligible but no rule applies).
Candidates come oldest first (creation time, then ID); each names the first
rule that selected it, in the order olderThanDays, noExpiryOlderThanDays,
keepBelow. ``keepBelow`` counts every listed indicator except those that
expire before the next run, since those leave the tenant anyway.

`list_for_cleanup` lists what the policy needs with the largest page. It
guarantees: rows are distinct by ID; every indicator that matches the
listing's filter and exists throughout the listing is returned, even while
other indicators are deleted. ``$skip`` pages shift when rows before a page
boundary vanish between two page reads, so at each boundary the row just
before it is read again (which costs as many List calls as there are pages
before the boundary: one for a tenant at the 15,000 cap), and the page's
first row must not be one already seen. If either check fails the listing
restarts once; if the second also moves, `ListingShiftedError` is raised.
This assumes, as Defender's ID order gives, that new indicators list after
existing ones, and that every page but the last is full. Rows deleted after
they were read may still be returned; deleting them is a harmless 404.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from .errors import DefenderError
from .values import (
    INDICATOR_TYPES,
    LIST_PAGE_SIZE,
    MAX_ACTIVE_INDICATORS,
    MAX_FILTER_CHARS,
    MAX_VALUES_PER_FILTER,
    IndicatorLister,
    odata_in,
)

__all__ = [
    "ACTIONS",
    "DEFAULT_MAX_PER_RUN",
    "DEFAULT_NEXT_RUN_HOURS",
    "MODE_DELETE",
    "MODE_PREVIEW",
    "RULES",
    "SKIP_REASONS",
    "Candidate",
    "CleanupPolicy",
    "ListingShiftedError",
    "PolicyError",
    "Selection",
    "list_for_cleanup",
    "list_stably",
    "owner_filter",
    "select",
]

logger = logging.getLogger(__name__)

ALLOWED = "Allowed"
# Defender's actions; Alert and AlertAndBlock are legacy but still listed.
_LEGACY_ACTIONS = ("Alert", "AlertAndBlock")
ACTIONS = (ALLOWED, "Audit", "Block", "BlockAndRemediate", "Warn", *_LEGACY_ACTIONS)
MODE_DELETE = "delete"
MODE_PREVIEW = "preview"
RULE_OLDER_THAN = "olderThanDays"
RULE_NO_EXPIRY = "noExpiryOlderThanDays"
RULE_KEEP_BELOW = "keepBelow"
RULES = (RULE_OLDER_THAN, RULE_NO_EXPIRY, RULE_KEEP_BELOW)
SKIP_REASONS = (
    "malformed",
    "notOwned",
    "allowedProtected",
    "filteredOut",
    "expiresBeforeNextRun",
    "overRunCap",
)
DEFAULT_MAX_PER_RUN = 1_000
MAX_PER_RUN = MAX_ACTIVE_INDICATORS
DEFAULT_NEXT_RUN_HOURS = 24
MAX_NEXT_RUN_HOURS = 24 * 366
# Far beyond any indicator's age, and small enough for timedelta.
MAX_AGE_DAYS = 36_500
# One restart after a shifted listing; a second shift gives up.
LISTING_ATTEMPTS = 2

_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_TOP_KEYS = (
    "owners",
    "includeAllowed",
    "indicatorTypes",
    "actions",
    "rules",
    "maxPerRun",
    "mode",
    "nextRunWithinHours",
)
_OWNER_KEYS = ("applications", "creators")
# Inclusive bounds of each whole-number setting.
_BOUNDS = {
    RULE_OLDER_THAN: (1, MAX_AGE_DAYS),
    RULE_NO_EXPIRY: (1, MAX_AGE_DAYS),
    RULE_KEEP_BELOW: (0, MAX_ACTIVE_INDICATORS),
    "maxPerRun": (1, MAX_PER_RUN),
    "nextRunWithinHours": (0, MAX_NEXT_RUN_HOURS),
}


class PolicyError(ValueError):
    """The policy text is unusable; `problems` names each problem by path."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid cleanup policy: " + "; ".join(self.problems))


class ListingShiftedError(DefenderError):
    """The listing moved under us twice: rows vanished across page reads."""


@dataclass(frozen=True)
class CleanupPolicy:
    """A validated cleanup policy; build it with `from_json`."""

    applications: tuple[str, ...] = ()
    creators: tuple[str, ...] = ()
    creators_listed: bool = False
    include_allowed: bool = False
    indicator_types: tuple[str, ...] | None = None
    actions: tuple[str, ...] | None = None
    older_than_days: int | None = None
    no_expiry_older_than_days: int | None = None
    keep_below: int | None = None
    max_per_run: int = DEFAULT_MAX_PER_RUN
    mode: str = MODE_PREVIEW
    next_run_within_hours: int = DEFAULT_NEXT_RUN_HOURS

    @classmethod
    def from_json(cls, text: str, *, own_client_id: str) -> CleanupPolicy:
        """Parse and validate; raises PolicyError naming every problem."""
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PolicyError(
                [f"policy is not valid JSON: {exc.msg} at line {exc.lineno}"]
            ) from exc
        return _PolicyReader(own_client_id).read(document)

    @property
    def deletes(self) -> bool:
        """True when the policy may delete, False when it only previews."""
        return self.mode == MODE_DELETE

    def owns(self, indicator: Mapping[str, Any]) -> bool:
        """Whether the indicator belongs to an owner the policy names."""
        application = indicator.get("application")
        creator = _creator_key(indicator.get("createdBy"))
        if application is None:
            return self.creators_listed and creator in self.creators
        return application in self.applications or creator in self.creators

    def to_dict(self) -> dict[str, Any]:
        """The policy in its JSON shape, defaults filled in."""
        rules = {
            RULE_OLDER_THAN: self.older_than_days,
            RULE_NO_EXPIRY: self.no_expiry_older_than_days,
            RULE_KEEP_BELOW: self.keep_below,
        }
        return {
            "owners": {
                "applications": list(self.applications),
                "creators": list(self.creators),
            },
            "includeAllowed": self.include_allowed,
            "indicatorTypes": _listed(self.indicator_types),
            "actions": _listed(self.actions),
            "rules": {k: v for k, v in rules.items() if v is not None},
            "maxPerRun": self.max_per_run,
            "mode": self.mode,
            "nextRunWithinHours": self.next_run_within_hours,
        }


@dataclass(frozen=True)
class Candidate:
    """One indicator a run would delete, and the rule that chose it."""

    id: int
    rule: str
    value: str | None
    indicator_type: str | None
    action: str | None
    application: str | None
    created_by: str | None
    created: datetime
    expires: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "indicatorValue": self.value,
            "indicatorType": self.indicator_type,
            "action": self.action,
            "application": self.application,
            "createdBy": self.created_by,
            "creationTimeDateTimeUtc": self.created.isoformat(),
            "expirationTime": None
            if self.expires is None
            else self.expires.isoformat(),
        }


@dataclass(frozen=True)
class Selection:
    """What a run would delete, in order, and how many it passed over."""

    candidates: list[Candidate]
    skipped: dict[str, int] = field(default_factory=dict)
    kept: int = 0
    examined: int = 0

    def ids(self) -> list[int]:
        return [candidate.id for candidate in self.candidates]


@dataclass(frozen=True)
class _Row:
    id: int
    created: datetime
    expires: datetime | None
    raw: Mapping[str, Any]


def select(
    policy: CleanupPolicy, indicators: Iterable[Mapping[str, Any]], *, now: datetime
) -> Selection:
    """The candidates `policy` picks from `indicators` at `now` (aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    horizon = now + timedelta(hours=policy.next_run_within_hours)
    rows = _distinct(indicators)

    eligible: list[_Row] = []
    leaving = 0
    for raw in rows:
        row = _parsed(raw)
        leaving += row is not None and _leaves_first(row, horizon)
        reason = _skip_reason(policy, raw, row, horizon)
        if reason is not None:
            skipped[reason] += 1
        elif row is not None:
            eligible.append(row)

    staying = len(rows) - leaving
    chosen, kept = _chosen(policy, eligible, staying, now)
    skipped["overRunCap"] = max(0, len(chosen) - policy.max_per_run)
    candidates = [_candidate(row, rule) for row, rule in chosen[: policy.max_per_run]]
    return Selection(candidates, skipped, kept, len(rows))


def _distinct(indicators: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The first row seen for each ID; rows without an ID are kept apart."""
    by_id: dict[str, Mapping[str, Any]] = {}
    unnamed: list[Mapping[str, Any]] = []
    for row in indicators:
        row_id = row.get("id")
        if row_id is None:
            unnamed.append(row)
        else:
            by_id.setdefault(str(row_id).strip(), row)
    return [*by_id.values(), *unnamed]


def _skip_reason(
    policy: CleanupPolicy, raw: Mapping[str, Any], row: _Row | None, horizon: datetime
) -> str | None:
    """The first reason to pass a row over, or None when it is eligible."""
    if row is None:
        return "malformed"
    if not policy.owns(raw):
        return "notOwned"
    if raw.get("action") == ALLOWED and not policy.include_allowed:
        return "allowedProtected"
    if not _passes_filters(policy, raw):
        return "filteredOut"
    if _leaves_first(row, horizon):
        return "expiresBeforeNextRun"
    return None


def _leaves_first(row: _Row, horizon: datetime) -> bool:
    """Whether Defender removes the row itself before the next run."""
    return row.expires is not None and row.expires < horizon


def _passes_filters(policy: CleanupPolicy, raw: Mapping[str, Any]) -> bool:
    types, actions = policy.indicator_types, policy.actions
    if types is not None and raw.get("indicatorType") not in types:
        return False
    return actions is None or raw.get("action") in actions


def _chosen(
    policy: CleanupPolicy, eligible: Sequence[_Row], staying: int, now: datetime
) -> tuple[list[tuple[_Row, str]], int]:
    """Rows and the rule that chose each, oldest first; and the kept count."""
    aged: list[tuple[_Row, str]] = []
    rest: list[_Row] = []
    for row in eligible:
        rule = _age_rule(policy, row, now)
        if rule is None:
            rest.append(row)
        else:
            aged.append((row, rule))

    rest.sort(key=_order)
    extra = 0
    if policy.keep_below is not None:
        extra = max(0, staying - len(aged) - policy.keep_below)
    chosen = aged + [(row, RULE_KEEP_BELOW) for row in rest[:extra]]
    chosen.sort(key=lambda pair: _order(pair[0]))
    return chosen, len(rest) - min(extra, len(rest))


def _age_rule(policy: CleanupPolicy, row: _Row, now: datetime) -> str | None:
    age = now - row.created
    days = policy.older_than_days
    if days is not None and age > timedelta(days=days):
        return RULE_OLDER_THAN
    days = policy.no_expiry_older_than_days
    if days is not None and row.expires is None and age > timedelta(days=days):
        return RULE_NO_EXPIRY
    return None


def _order(row: _Row) -> tuple[datetime, int]:
    return row.created, row.id


def _parsed(raw: Mapping[str, Any]) -> _Row | None:
    try:
        row_id = int(str(raw.get("id")).strip())
        created = _timestamp(raw.get("creationTimeDateTimeUtc"))
        expiry = raw.get("expirationTime")
        expires = None if expiry is None else _timestamp(expiry)
    except ValueError:
        return None
    return _Row(row_id, created, expires, raw) if row_id > 0 else None


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("a timestamp must be text")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("a timestamp must carry its zone")
    return moment


def _candidate(row: _Row, rule: str) -> Candidate:
    raw = row.raw
    return Candidate(
        id=row.id,
        rule=rule,
        value=_text(raw.get("indicatorValue")),
        indicator_type=_text(raw.get("indicatorType")),
        action=_text(raw.get("action")),
        application=_text(raw.get("application")),
        created_by=_text(raw.get("createdBy")),
        created=row.created,
        expires=row.expires,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _creator_key(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.lower() if _GUID.fullmatch(value) else value


def _listed(values: tuple[str, ...] | None) -> list[str] | None:
    return None if values is None else list(values)


def owner_filter(policy: CleanupPolicy) -> str | None:
    """A ``$filter`` narrowing the listing to possible owners, or None.

    None when ``keepBelow`` needs the whole tenant counted, or when the
    owners are too many for one filter by the public guidance.
    """
    if policy.keep_below is not None:
        return None
    clauses = []
    if policy.applications:
        clauses.append(odata_in("application", policy.applications))
    if policy.creators:
        clauses.append(odata_in("createdBy", policy.creators))
    owners = len(policy.applications) + len(policy.creators)
    text = " or ".join(clauses)
    if not text or owners > MAX_VALUES_PER_FILTER or len(text) > MAX_FILTER_CHARS:
        return None
    return text


def list_for_cleanup(
    client: IndicatorLister,
    policy: CleanupPolicy,
    *,
    page_size: int = LIST_PAGE_SIZE,
) -> list[dict[str, Any]]:
    """Every indicator the policy may need, stable against shifting pages.

    Raises ListingShiftedError when two listings in a row moved, and
    whatever the client raises.
    """
    odata = owner_filter(policy)
    rows = list_stably(client, odata_filter=odata, page_size=page_size)
    logger.info("cleanup listing: %d rows, narrowed=%s", len(rows), odata is not None)
    return rows


def list_stably(
    client: IndicatorLister,
    *,
    odata_filter: str | None = None,
    page_size: int = LIST_PAGE_SIZE,
) -> list[dict[str, Any]]:
    """Every indicator matching the filter that exists throughout the listing,
    even while others are being deleted (see the module docstring).

    Raises ListingShiftedError when two listings in a row moved, and
    whatever the client raises.
    """
    for attempt in range(1, LISTING_ATTEMPTS + 1):
        rows = _listing(client, odata_filter, page_size)
        if rows is not None:
            return rows
        logger.warning("the listing shifted during attempt %d", attempt)
    raise ListingShiftedError(
        f"the indicator listing shifted in {LISTING_ATTEMPTS} attempts in a row"
    )


def _listing(
    client: IndicatorLister, odata: str | None, page_size: int
) -> list[dict[str, Any]] | None:
    """One listing, or None when a page boundary moved while it ran."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in client.list_indicators(odata_filter=odata, page_size=page_size):
        at_boundary = bool(rows) and len(rows) % page_size == 0
        if at_boundary and not _boundary_held(client, odata, page_size, rows):
            return None
        row_id = str(row.get("id"))
        if row_id in seen:
            return None
        seen.add(row_id)
        rows.append(row)
    # A full last page means an empty page was read after it: check that too.
    ended_full = bool(rows) and len(rows) % page_size == 0
    if ended_full and not _boundary_held(client, odata, page_size, rows):
        return None
    return rows


def _boundary_held(
    client: IndicatorLister,
    odata: str | None,
    page_size: int,
    rows: Sequence[Mapping[str, Any]],
) -> bool:
    """Whether the row before the boundary still sits where it was read."""
    position = len(rows) - 1
    again = _nth(
        client.list_indicators(odata_filter=odata, page_size=page_size), position
    )
    return again is not None and str(again.get("id")) == str(rows[-1].get("id"))


def _nth(rows: Iterator[dict[str, Any]], position: int) -> dict[str, Any] | None:
    return next(islice(rows, position, position + 1), None)


class _PolicyReader:
    """Reads a policy document, collecting every problem with its path."""

    def __init__(self, own_client_id: str) -> None:
        if not own_client_id.strip():
            raise ValueError("own_client_id must not be blank")
        self._own = own_client_id.strip()
        self.problems: list[str] = []

    def read(self, document: Any) -> CleanupPolicy:
        if not isinstance(document, dict):
            raise PolicyError(["policy must be a JSON object"])
        self._unknown(document, _TOP_KEYS, "")
        applications, creators, listed = self._owners(document.get("owners"))
        include_allowed = self._flag(document, "includeAllowed")
        types = self._choices(document.get("indicatorTypes"), "indicatorTypes")
        actions = self._choices(document.get("actions"), "actions")
        self._check_allowed(actions, include_allowed)
        rules = self._rules(document.get("rules"))
        policy = CleanupPolicy(
            applications=applications,
            creators=creators,
            creators_listed=listed,
            include_allowed=include_allowed,
            indicator_types=types,
            actions=actions,
            older_than_days=rules.get(RULE_OLDER_THAN),
            no_expiry_older_than_days=rules.get(RULE_NO_EXPIRY),
            keep_below=rules.get(RULE_KEEP_BELOW),
            max_per_run=self._count(document, "maxPerRun", DEFAULT_MAX_PER_RUN),
            mode=self._mode(document.get("mode")),
            next_run_within_hours=self._count(
                document, "nextRunWithinHours", DEFAULT_NEXT_RUN_HOURS
            ),
        )
        if self.problems:
            raise PolicyError(self.problems)
        return policy

    def _unknown(
        self, document: Mapping[str, Any], known: Sequence[str], at: str
    ) -> None:
        for key in document:
            if key in known:
                continue
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            self.problems.append(f"{at}{key} is not a known key{hint}")

    def _owners(self, value: Any) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
        default = (_creator_key(self._own) or self._own,)
        if value is None:
            return (), default, False
        if not isinstance(value, dict):
            self.problems.append("owners must be an object")
            return (), default, False
        self._unknown(value, _OWNER_KEYS, "owners.")
        applications = self._strings(value.get("applications"), "owners.applications")
        listed = value.get("creators") is not None
        creators = self._strings(value.get("creators"), "owners.creators")
        folded = tuple(dict.fromkeys(_creator_key(c) or c for c in creators))
        if not listed:
            folded = default
        if not applications and not folded:
            self.problems.append("owners must name at least one application or creator")
        return applications, folded, listed

    def _strings(self, value: Any, path: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problems.append(f"{path} must be a list of strings")
            return ()
        good: dict[str, None] = {}
        for index, item in enumerate(value):
            if isinstance(item, str) and item.strip():
                good.setdefault(item.strip())
            else:
                self.problems.append(f"{path}[{index}] must be a non-empty string")
        return tuple(good)

    def _choices(self, value: Any, path: str) -> tuple[str, ...] | None:
        if value is None:
            return None
        allowed = INDICATOR_TYPES if path == "indicatorTypes" else ACTIONS
        if not isinstance(value, list) or not value:
            self.problems.append(f"{path} must be a non-empty list")
            return None
        good: dict[str, None] = {}
        for index, item in enumerate(value):
            if item in allowed:
                good.setdefault(item)
            else:
                self.problems.append(
                    f"{path}[{index}] must be one of {', '.join(allowed)}"
                )
        return tuple(good)

    def _check_allowed(self, actions: tuple[str, ...] | None, include: bool) -> None:
        if actions is not None and ALLOWED in actions and not include:
            index = actions.index(ALLOWED)
            self.problems.append(
                f"actions[{index}] is Allowed, which stays protected unless "
                "includeAllowed is true"
            )

    def _flag(self, document: Mapping[str, Any], key: str) -> bool:
        value = document.get(key, False)
        if value is None or isinstance(value, bool):
            return bool(value)
        self.problems.append(f"{key} must be true or false")
        return False

    def _rules(self, value: Any) -> dict[str, int]:
        if value is None:
            self.problems.append("rules is required")
            return {}
        if not isinstance(value, dict):
            self.problems.append("rules must be an object")
            return {}
        self._unknown(value, RULES, "rules.")
        if not any(value.get(name) is not None for name in RULES):
            self.problems.append(f"rules must hold at least one of {', '.join(RULES)}")
        numbers = {name: self._number(value, name, "rules.", None) for name in RULES}
        return {name: n for name, n in numbers.items() if n is not None}

    def _number(
        self, document: Mapping[str, Any], key: str, at: str, default: int | None
    ) -> int | None:
        value, (low, high) = document.get(key), _BOUNDS[key]
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            self.problems.append(f"{at}{key} must be a whole number >= {low}")
        elif value > high:
            self.problems.append(f"{at}{key} must be at most {high}")
        else:
            return value
        return default

    def _count(self, document: Mapping[str, Any], key: str, default: int) -> int:
        number = self._number(document, key, "", default)
        return default if number is None else number

    def _mode(self, value: Any) -> str:
        if value is None:
            return MODE_PREVIEW
        if value in (MODE_DELETE, MODE_PREVIEW):
            return str(value)
        self.problems.append(f'mode must be "{MODE_DELETE}" or "{MODE_PREVIEW}"')
        return MODE_PREVIEW
