"""Properties of outcome merging, ID parsing and the Table-backed budget.

The budget's properties run against the session's Azurite, each example in a
partition of its own, with a fake clock shared by two `TableBudget` objects
(two function instances) and a table client that can answer a write the way
the SDK does after a retry: applied on the server, yet reported as 412.
"""

from __future__ import annotations

import json
import struct
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shared.errors import RequestError
from shared.ids import MAX_REPORTED_PROBLEMS, parse_indicator_ids
from shared.outcomes import decode_outcome, encode_outcome, restrict
from shared.pacing import MAX_IN_FLIGHT_S, BudgetExhausted, Slot, effective_times
from shared.report import BatchOutcome, Failure
from shared.settings import RateLimit
from shared.table_budget import TableBudget

PROPERTY_SETTINGS = settings(derandomize=True, database=None, deadline=None)
MAX_ID = 2**63 - 1

# --- outcomes -------------------------------------------------------------------------

FAILURE_TEXT = st.text(max_size=12)
FAILURE_FIELDS = st.tuples(
    st.none() | st.sampled_from([400, 403, 404, 429, 500, 503]),
    st.none() | st.sampled_from(["Forbidden", "NotFound", "InternalServerError"]),
    st.none() | FAILURE_TEXT,
    FAILURE_TEXT,
)
CATEGORIES = ("deleted", "not_found", "forbidden", "failed")


@st.composite
def outcomes(draw: st.DrawFn, ids: list[int] | None = None) -> BatchOutcome:
    """An outcome settling each of `ids` (or of some drawn IDs) exactly once."""
    if ids is None:
        ids = draw(st.lists(st.integers(1, MAX_ID), unique=True, max_size=60))
    # A few shared causes, as when one Defender answer fails a whole batch.
    causes = draw(st.lists(FAILURE_FIELDS, min_size=1, max_size=3))
    outcome = BatchOutcome()
    for indicator_id in ids:
        category = draw(st.sampled_from(CATEGORIES))
        if category == "deleted":
            outcome.deleted.append(indicator_id)
        elif category == "not_found":
            outcome.not_found.append(indicator_id)
        else:
            cause = draw(st.sampled_from(causes))
            getattr(outcome, category).append(Failure(indicator_id, *cause))
    return outcome


def as_sets(outcome: BatchOutcome) -> dict[str, Counter[Any]]:
    """The outcome with order forgotten but repetitions kept."""
    return {
        "deleted": Counter(outcome.deleted),
        "not_found": Counter(outcome.not_found),
        "forbidden": Counter(outcome.forbidden),
        "failed": Counter(outcome.failed),
    }


@PROPERTY_SETTINGS
@given(outcomes())
def test_an_encoded_outcome_decodes_to_the_same_outcome(outcome: BatchOutcome) -> None:
    assert as_sets(decode_outcome(encode_outcome(outcome))) == as_sets(outcome)


@PROPERTY_SETTINGS
@given(outcomes())
def test_encoding_groups_failures_sharing_a_cause_into_one_entry(
    outcome: BatchOutcome,
) -> None:
    document = json.loads(encode_outcome(outcome))

    for kind, failures in (
        ("forbidden", outcome.forbidden),
        ("failed", outcome.failed),
    ):
        causes = {(f.status, f.code, f.target, f.message) for f in failures}
        assert len(document[kind]) == len(causes)


@st.composite
def outcomes_and_partitions(
    draw: st.DrawFn,
) -> tuple[BatchOutcome, list[list[int]]]:
    """An outcome, and a partition of its IDs plus IDs it does not settle."""
    settled = draw(st.lists(st.integers(1, MAX_ID), unique=True, max_size=60))
    others = draw(
        st.lists(st.integers(1, MAX_ID), unique=True, max_size=10).map(
            lambda drawn: [i for i in drawn if i not in set(settled)]
        )
    )
    outcome = draw(outcomes(settled))
    parts = draw(st.integers(1, 6))
    partition: list[list[int]] = [[] for _ in range(parts)]
    for indicator_id in draw(st.permutations(settled + others)):
        partition[draw(st.integers(0, parts - 1))].append(indicator_id)
    return outcome, partition


@PROPERTY_SETTINGS
@given(outcomes_and_partitions())
def test_restricting_to_a_partition_splits_an_outcome_exactly(
    case: tuple[BatchOutcome, list[list[int]]],
) -> None:
    outcome, partition = case

    pieces = [restrict(outcome, part) for part in partition]

    merged = BatchOutcome()
    for part, piece in zip(partition, pieces, strict=True):
        assert set(piece.settled_ids()) <= set(part)
        merged.merge(piece)
    assert as_sets(merged) == as_sets(outcome)


@PROPERTY_SETTINGS
@given(outcomes_and_partitions())
def test_merged_pieces_settle_every_id_once(
    case: tuple[BatchOutcome, list[list[int]]],
) -> None:
    outcome, partition = case
    merged = BatchOutcome()

    for part in partition:
        piece = decode_outcome(encode_outcome(restrict(outcome, part)))
        merged.merge(piece)

    settled = merged.settled_ids()
    assert len(settled) == len(set(settled))
    assert set(settled) == set(outcome.settled_ids())


def test_an_empty_stored_outcome_decodes_to_nothing_settled() -> None:
    assert decode_outcome("").settled_ids() == []
    assert decode_outcome(None).settled_ids() == []


# --- ID parsing -----------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=MAX_ID - 2, max_value=2**80)
    | st.floats(allow_nan=False)
    | st.text(max_size=25)
    | st.integers(min_value=-5, max_value=MAX_ID).map(str)
    | st.integers(1, 10**6).map(lambda i: f" {i:08d} ")
    | st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=30,
)


@settings(PROPERTY_SETTINGS, max_examples=500)
@given(JSON_VALUES.map(lambda value: json.loads(json.dumps(value))))
def test_any_json_value_parses_to_positive_ids_or_a_request_error_naming_entries(
    value: Any,
) -> None:
    try:
        ids = parse_indicator_ids(value)
    except RequestError as error:
        assert error.status == 400
        assert "IndicatorIds" in error.message
        assert 1 <= len(error.problems) <= MAX_REPORTED_PROBLEMS
        for problem in error.problems:
            assert problem.where == "IndicatorIds" or (
                problem.where.startswith("IndicatorIds[")
                and problem.where.endswith("]")
            )
            assert problem.message.strip()
        return

    assert isinstance(value, list) and value
    assert ids and all(isinstance(i, int) and 1 <= i <= MAX_ID for i in ids)
    assert len(ids) == len(set(ids))


@PROPERTY_SETTINGS
@given(st.lists(JSON_SCALARS, min_size=1, max_size=40))
def test_each_bad_entry_is_named_by_its_index(entries: list[Any]) -> None:
    try:
        parse_indicator_ids(entries)
    except RequestError as error:
        named = [
            int(p.where.removeprefix("IndicatorIds[")[:-1]) for p in error.problems
        ]
        assert named == sorted(named)
        assert all(0 <= index < len(entries) for index in named)
        for index in named:
            with pytest.raises(RequestError):
                parse_indicator_ids([entries[index]])
        good = [e for i, e in enumerate(entries) if i not in set(named)]
        if len(named) < MAX_REPORTED_PROBLEMS and good:
            parse_indicator_ids(good)


# --- the Table-backed budget ----------------------------------------------------------

LIMITS = (RateLimit(3, 10.0), RateLimit(5, 40.0))
LONGEST_WINDOW_S = max(limit.window_s for limit in LIMITS)
API = "batch_delete"
BUDGET_EXAMPLES = 40
# The entity's layout (see shared.table_budget): per call, a 64-bit key and
# the time it counts from, little-endian.
CALL_RECORD = struct.Struct("<qd")
# How one write of the budget entity goes: as asked; lost to another writer
# that changed the entity first (a real 412); or applied and then reported as
# 412, as when the SDK retries a request whose first attempt reached Azurite.
WRITE_FATES = ("ok", "ok", "lost race", "applied, then 412")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScriptedTable:
    """The real table, with each write's fate taken from a script."""

    def __init__(self, table: TableClient, fates: list[str]) -> None:
        self._table = table
        self._fates = iter(fates)
        self.fates_used: Counter[str] = Counter()

    def get_entity(self, partition_key: str, row_key: str, **kwargs: Any) -> Any:
        return self._table.get_entity(partition_key, row_key, **kwargs)

    def create_entity(self, entity: dict[str, Any], **kwargs: Any) -> Any:
        return self._table.create_entity(entity, **kwargs)

    def update_entity(self, entity: dict[str, Any], **kwargs: Any) -> Any:
        fate = next(self._fates, "ok")
        self.fates_used[fate] += 1
        if fate == "lost race":
            current = self._table.get_entity(entity["PartitionKey"], entity["RowKey"])
            self._table.update_entity(current, mode=UpdateMode.MERGE)
        result = self._table.update_entity(entity, **kwargs)
        if fate == "applied, then 412":
            raise ResourceModifiedError("The condition specified was not met")
        return result

    def stored_calls(self, partition: str) -> dict[int, float]:
        try:
            entity = self._table.get_entity(partition, f"budget-{API}")
        except ResourceNotFoundError:
            return {}
        raw = bytes(entity.get("Calls") or b"")
        return dict(CALL_RECORD.iter_unpack(raw))


@dataclass
class Ledger:
    """Every call the budgets granted: when it was reserved, when answered."""

    reserved: dict[int, float] = field(default_factory=dict)
    answered: dict[int, float] = field(default_factory=dict)

    def stored(self) -> dict[int, float]:
        """What the table should hold: the answer's time, or for a call still
        in flight its reservation time negated."""
        return {k: self.answered.get(k, -t) for k, t in self.reserved.items()}

    def counted_at(self, now: float) -> list[float]:
        """When each call counts: its answer, or now while it is in flight."""
        in_flight = [t for k, t in self.reserved.items() if k not in self.answered]
        return effective_times(self.answered.values(), in_flight, now)

    def has_room(self, now: float) -> bool:
        times = self.counted_at(now)
        return all(
            sum(1 for t in times if t > now - limit.window_s) < limit.calls
            for limit in LIMITS
        )


# The longest a call takes here: less than the time after which the budget
# stops counting a call as in flight.
LONGEST_CALL_S = MAX_IN_FLIGHT_S - 1
Step = tuple[str, int, float]
STEPS = st.lists(
    st.tuples(
        st.sampled_from(["acquire", "acquire", "answer", "give back", "wait"]),
        st.integers(0, 7),
        st.sampled_from([0.0, 0.5, 1.0, 2.5, 4.0, 9.5, 10.0, 15.0, 40.0]),
    ),
    min_size=1,
    max_size=25,
)


@dataclass
class BudgetRun:
    """Two budget objects, as two function instances, sharing one entity."""

    table: ScriptedTable
    clock: FakeClock = field(default_factory=FakeClock)
    partition: str = field(default_factory=lambda: uuid.uuid4().hex)
    ledger: Ledger = field(default_factory=Ledger)
    held: list[Slot] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.budgets = [
            TableBudget(
                self.table,  # type: ignore[arg-type]
                self.partition,
                {API: LIMITS},
                clock=self.clock,
                sleep=self.clock.sleep,
            )
            for _ in range(2)
        ]

    def step(self, action: str, who: int, seconds: float) -> None:
        if action == "wait":
            self._advance(seconds)
        elif action == "acquire":
            self._acquire(self.budgets[who % 2])
        elif self.held:
            slot = self.held.pop(who % len(self.held))
            self._advance(seconds)  # the answer takes this long
            self._release(slot, sent=action == "answer")

    def _advance(self, seconds: float) -> None:
        """Move the clock on; a call cannot outlast the client's timeouts
        and retries (`MAX_IN_FLIGHT_S`), so any that would is answered
        just before that."""
        target = self.clock.now + seconds
        for slot in sorted(self.held, key=lambda s: self.ledger.reserved[s.key]):
            latest = self.ledger.reserved[slot.key] + LONGEST_CALL_S
            if latest < target:
                self.clock.now = max(self.clock.now, latest)
                self.held.remove(slot)
                self._release(slot, sent=True)
        self.clock.now = target

    def _release(self, slot: Slot, *, sent: bool) -> None:
        slot.release(sent=sent)
        if sent:
            self.ledger.answered[slot.key] = self.clock.now
        else:
            del self.ledger.reserved[slot.key]

    def _acquire(self, budget: TableBudget) -> None:
        room = self.ledger.has_room(self.clock.now)
        try:
            slot = budget.acquire(API, timeout_s=0)
        except BudgetExhausted:
            assert not room, "refused although every window had room"
            return
        assert room, "granted although a window was full"
        self.ledger.reserved[slot.key] = self.clock.now
        self.held.append(slot)

    def check_table(self) -> None:
        """The entity holds each live call once, at the time it counts from."""
        recent = self.clock.now - LONGEST_WINDOW_S
        stored = self.table.stored_calls(self.partition)
        expected = self.ledger.stored()
        assert set(stored) <= set(expected)

        def live(calls: dict[int, float]) -> dict[int, float]:
            return {k: t for k, t in calls.items() if t < 0 or t > recent}

        assert live(stored) == live(expected)


@pytest.mark.integration
def test_budgets_sharing_a_table_grant_exactly_while_windows_have_room(
    budget_table: TableClient,
) -> None:
    fates_seen: Counter[str] = Counter()

    @settings(
        PROPERTY_SETTINGS,
        max_examples=BUDGET_EXAMPLES,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(STEPS, st.lists(st.sampled_from(WRITE_FATES), max_size=80))
    def run(steps: list[Step], fates: list[str]) -> None:
        budget_run = BudgetRun(ScriptedTable(budget_table, fates))
        for step in steps:
            budget_run.step(*step)
            budget_run.check_table()
        fates_seen.update(budget_run.table.fates_used)

    run()

    assert fates_seen["applied, then 412"] > 0 and fates_seen["lost race"] > 0


@pytest.mark.integration
def test_a_write_applied_then_reported_412_counts_the_call_once(
    budget_table: TableClient,
) -> None:
    table = ScriptedTable(budget_table, ["applied, then 412"] * 2)
    budget_run = BudgetRun(table)
    budget = budget_run.budgets[0]

    slot = budget.acquire(API, timeout_s=0)
    reserved = table.stored_calls(budget_run.partition)
    budget_run.clock.now += 1
    slot.release()
    answered = table.stored_calls(budget_run.partition)

    # In flight, a call is stored with its reservation time negated.
    assert reserved == {slot.key: -(budget_run.clock.now - 1)}
    assert answered == {slot.key: budget_run.clock.now}
    first_limit = LIMITS[0].calls
    for _ in range(first_limit - 1):
        budget.acquire(API, timeout_s=0)
    with pytest.raises(BudgetExhausted):
        budget.acquire(API, timeout_s=0)


# One call still unanswered when the window has moved past its reservation,
# then three more, then the first one's answer.
IN_FLIGHT_PAST_A_WINDOW: list[Step] = [
    ("acquire", 0, 0.0),
    ("wait", 0, LIMITS[0].window_s),
    ("acquire", 1, 0.0),
    ("acquire", 1, 0.0),
    ("acquire", 1, 0.0),
    ("answer", 0, 0.5),
]


# A call answered only when the client gives up on it, amid other calls.
ANSWERED_AT_THE_LONGEST: list[Step] = [
    ("acquire", 0, 0.0),
    *[("wait", 0, 40.0)] * 7,
    ("acquire", 1, 0.0),
    ("acquire", 1, 0.0),
    ("wait", 0, 40.0),
    ("acquire", 1, 0.0),
]


@pytest.mark.integration
def test_no_window_ever_holds_more_calls_than_allowed(
    budget_table: TableClient,
) -> None:
    @settings(
        PROPERTY_SETTINGS,
        max_examples=BUDGET_EXAMPLES,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(STEPS)
    @example(IN_FLIGHT_PAST_A_WINDOW)
    @example(ANSWERED_AT_THE_LONGEST)
    def run(steps: list[Step]) -> None:
        budget_run = BudgetRun(ScriptedTable(budget_table, []))
        for step in steps:
            budget_run.step(*step)
        while budget_run.held:
            budget_run.step("answer", 0, 0.0)
        every_window_within_limits(budget_run.ledger.answered.values())

    run()


def every_window_within_limits(times: Iterable[float]) -> None:
    """No window of any limit, wherever it starts, holds too many calls."""
    ordered = sorted(times)
    for limit in LIMITS:
        for start in ordered:
            inside = [t for t in ordered if start <= t < start + limit.window_s]
            assert len(inside) <= limit.calls, f"{limit}: calls at {inside}"
