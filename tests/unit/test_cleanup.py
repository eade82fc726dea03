"""The cleanup policy: parsing, selection, and a listing that survives deletes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator import EmulatorConfig, RunningEmulator, load_seed, start_emulator
from localdev.tokens import TokenSigner
from shared.cleanup import (
    SKIP_REASONS,
    CleanupPolicy,
    ListingShiftedError,
    PolicyError,
    Selection,
    list_for_cleanup,
    owner_filter,
    select,
)
from shared.defender import API_BATCH_DELETE, API_LIST, DefenderClient
from shared.pacing import InProcessBudget
from shared.settings import parse_rate_limits

NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)
OWN_ID = "b5a47963-b7f1-5072-bb8f-abe981bf12f4"
OWN_APP = "ioc-batch-delete"
OTHER_ID = "7904713b-0ab7-5970-9207-f4ea07d6e5e4"
OTHER_APP = "Microsoft Sentinel"
AUDIENCE = "https://api.securitycenter.microsoft.com"
_ids = count(1000)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def indicator(
    *,
    age_days: float = 400,
    expires_in_hours: float | None = None,
    app: str | None = OWN_APP,
    created_by: str | None = None,
    action: str = "Block",
    kind: str = "IpAddress",
    indicator_id: int | None = None,
) -> dict[str, Any]:
    """A List-shaped indicator; an app's own by default."""
    creator = created_by or {OWN_APP: OWN_ID, OTHER_APP: OTHER_ID}.get(
        app or "", "analyst@contoso.com"
    )
    expires = None
    if expires_in_hours is not None:
        expires = (NOW + timedelta(hours=expires_in_hours)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
    return {
        "id": str(indicator_id or next(_ids)),
        "indicatorValue": "203.0.113.7",
        "indicatorType": kind,
        "action": action,
        "application": app,
        "sourceType": "User" if app is None else "AadApp",
        "createdBy": creator,
        "creationTimeDateTimeUtc": stamp(NOW - timedelta(days=age_days)),
        "expirationTime": expires,
    }


def policy(**document: Any) -> CleanupPolicy:
    document.setdefault("rules", {"olderThanDays": 30})
    return CleanupPolicy.from_json(json.dumps(document), own_client_id=OWN_ID)


def chosen(selection: Selection) -> list[tuple[int, str]]:
    return [(c.id, c.rule) for c in selection.candidates]


# --- rules -----------------------------------------------------------------


def test_older_than_days_selects_only_older_indicators() -> None:
    old, young = indicator(age_days=31), indicator(age_days=29)

    selection = select(policy(), [old, young], now=NOW)

    assert chosen(selection) == [(int(old["id"]), "olderThanDays")]
    assert selection.kept == 1


def test_no_expiry_rule_selects_only_indicators_without_expiry() -> None:
    forever = indicator(age_days=100)
    expiring = indicator(age_days=100, expires_in_hours=24 * 30)
    rules = {"noExpiryOlderThanDays": 90}

    selection = select(policy(rules=rules), [forever, expiring], now=NOW)

    assert chosen(selection) == [(int(forever["id"]), "noExpiryOlderThanDays")]


def test_the_first_rule_that_applies_is_named() -> None:
    both = indicator(age_days=400)
    rules = {"olderThanDays": 365, "noExpiryOlderThanDays": 30, "keepBelow": 0}

    selection = select(policy(rules=rules), [both], now=NOW)

    assert chosen(selection) == [(int(both["id"]), "olderThanDays")]


def test_keep_below_deletes_the_oldest_owned_until_the_target() -> None:
    owned = [indicator(age_days=50 - i) for i in range(10)]
    others = [indicator(app=OTHER_APP, age_days=100) for _ in range(5)]

    selection = select(policy(rules={"keepBelow": 12}), owned + others, now=NOW)

    assert chosen(selection) == [(int(r["id"]), "keepBelow") for r in owned[:3]]
    assert selection.skipped["notOwned"] == 5


def test_keep_below_never_touches_unowned_even_above_the_target() -> None:
    owned = [indicator(age_days=10) for _ in range(3)]
    others = [indicator(app=OTHER_APP) for _ in range(20)]

    selection = select(policy(rules={"keepBelow": 5}), owned + others, now=NOW)

    assert sorted(selection.ids()) == sorted(int(r["id"]) for r in owned)


def test_keep_below_counts_what_the_age_rules_already_remove() -> None:
    aged = [indicator(age_days=400) for _ in range(4)]
    young = [indicator(age_days=5 - i) for i in range(4)]
    rules = {"olderThanDays": 365, "keepBelow": 3}

    selection = select(policy(rules=rules), aged + young, now=NOW)

    assert [rule for _, rule in chosen(selection)] == ["olderThanDays"] * 4 + [
        "keepBelow"
    ]
    assert selection.ids()[-1] == int(young[0]["id"])


def test_keep_below_does_not_count_what_expires_before_the_next_run() -> None:
    leaving = [indicator(age_days=20, expires_in_hours=2) for _ in range(3)]
    staying = [indicator(age_days=20 - i) for i in range(4)]

    selection = select(policy(rules={"keepBelow": 3}), leaving + staying, now=NOW)

    assert selection.ids() == [int(staying[0]["id"])]
    assert selection.skipped["expiresBeforeNextRun"] == 3


def test_keep_below_does_not_count_unowned_rows_that_expire_soon() -> None:
    leaving = [indicator(app=OTHER_APP, expires_in_hours=2) for _ in range(3)]
    staying = [indicator(age_days=20 - i) for i in range(4)]

    selection = select(policy(rules={"keepBelow": 3}), leaving + staying, now=NOW)

    assert selection.ids() == [int(staying[0]["id"])]
    assert selection.skipped["notOwned"] == 3


# --- ownership and protection ----------------------------------------------


def test_the_default_owner_is_the_apps_own_client_id() -> None:
    mine = indicator(app="renamed-app", created_by=OWN_ID)
    theirs = indicator(app=OTHER_APP)
    portal = indicator(app=None, created_by=OWN_ID)

    selection = select(policy(), [mine, theirs, portal], now=NOW)

    assert selection.ids() == [int(mine["id"])]
    assert selection.skipped["notOwned"] == 2


def test_ownership_by_application_name() -> None:
    sentinel, mine = indicator(app=OTHER_APP), indicator()
    owners = {"applications": [OTHER_APP], "creators": []}

    selection = select(policy(owners=owners), [sentinel, mine], now=NOW)

    assert selection.ids() == [int(sentinel["id"])]


def test_ownership_by_creator_covers_portal_indicators_listed_explicitly() -> None:
    analyst = indicator(app=None, created_by="analyst@contoso.com")
    colleague = indicator(app=None, created_by="lead@contoso.com")
    owners = {"creators": ["analyst@contoso.com"]}

    selection = select(policy(owners=owners), [analyst, colleague], now=NOW)

    assert selection.ids() == [int(analyst["id"])]


def test_application_only_owners_keep_the_default_creator() -> None:
    parsed = policy(owners={"applications": [OTHER_APP]})

    assert parsed.creators == (OWN_ID,)
    assert parsed.owns(indicator()) and parsed.owns(indicator(app=OTHER_APP))


def test_a_guid_creator_compares_in_lower_case() -> None:
    parsed = policy(owners={"creators": [OTHER_ID.upper()]})

    assert parsed.owns(indicator(app=OTHER_APP))


def test_allowed_indicators_are_protected_by_default() -> None:
    allowed = indicator(action="Allowed")

    selection = select(policy(), [allowed], now=NOW)

    assert not selection.candidates
    assert selection.skipped["allowedProtected"] == 1


def test_allowed_indicators_can_be_opted_in() -> None:
    allowed = indicator(action="Allowed")

    selection = select(policy(includeAllowed=True), [allowed], now=NOW)

    assert selection.ids() == [int(allowed["id"])]


@pytest.mark.parametrize(
    ("document", "kept"),
    [
        ({"indicatorTypes": ["Url"]}, "Url"),
        ({"actions": ["Audit"]}, "Audit"),
    ],
)
def test_type_and_action_filters_narrow_the_selection(
    document: dict[str, Any], kept: str
) -> None:
    url = indicator(kind="Url", action="Audit")
    ip = indicator(kind="IpAddress", action="Block")

    selection = select(policy(**document), [url, ip], now=NOW)

    assert selection.ids() == [int(url["id"])]
    assert selection.skipped["filteredOut"] == 1


@pytest.mark.parametrize(
    ("hours_left", "window", "selected"),
    [(23, None, False), (25, None, True), (1, 0, True), (47, 48, False)],
)
def test_indicators_expiring_before_the_next_run_are_left_to_defender(
    hours_left: int, window: int | None, selected: bool
) -> None:
    row = indicator(expires_in_hours=hours_left)
    document = {} if window is None else {"nextRunWithinHours": window}

    selection = select(policy(**document), [row], now=NOW)

    assert bool(selection.candidates) is selected
    assert selection.skipped["expiresBeforeNextRun"] == (0 if selected else 1)


# --- order, cap, determinism -----------------------------------------------


def test_the_run_cap_keeps_the_oldest_and_counts_the_rest() -> None:
    rows = [indicator(age_days=40 + (i * 7) % 11) for i in range(11)]

    selection = select(policy(maxPerRun=4), rows, now=NOW)

    oldest = sorted(rows, key=lambda r: (r["creationTimeDateTimeUtc"], int(r["id"])))
    assert selection.ids() == [int(r["id"]) for r in oldest[:4]]
    assert selection.skipped["overRunCap"] == 7


def test_an_id_listed_twice_is_selected_once() -> None:
    row = indicator()

    selection = select(
        policy(), [row, dict(row), {**row, "id": f" {row['id']}"}], now=NOW
    )

    assert selection.ids() == [int(row["id"])]
    assert selection.examined == 1


def test_a_malformed_row_is_counted_not_selected() -> None:
    rows = [
        {**indicator(), "creationTimeDateTimeUtc": "yesterday"},
        {**indicator(), "id": "abc"},
    ]

    selection = select(policy(), rows, now=NOW)

    assert selection.skipped["malformed"] == 2


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError):
        select(policy(), [], now=datetime(2027, 1, 1))


rows_strategy = st.lists(
    st.builds(
        indicator,
        age_days=st.floats(min_value=0, max_value=800),
        expires_in_hours=st.none() | st.floats(min_value=1, max_value=24 * 180),
        app=st.sampled_from([OWN_APP, OTHER_APP, None]),
        action=st.sampled_from(["Allowed", "Audit", "Block", "Warn"]),
        kind=st.sampled_from(["IpAddress", "Url", "FileSha256"]),
        indicator_id=st.integers(min_value=1, max_value=60),
    ),
    max_size=60,
)


@settings(max_examples=80, deadline=None)
@given(
    rows=rows_strategy,
    keep_below=st.none() | st.integers(min_value=0, max_value=60),
    cap=st.integers(min_value=1, max_value=30),
)
def test_every_row_is_accounted_for_once_and_order_is_oldest_first(
    rows: list[dict[str, Any]], keep_below: int | None, cap: int
) -> None:
    rules: dict[str, int] = {"noExpiryOlderThanDays": 200}
    if keep_below is not None:
        rules["keepBelow"] = keep_below
    chosen_policy = policy(rules=rules, maxPerRun=cap)

    selection = select(chosen_policy, rows, now=NOW)
    again = select(chosen_policy, list(reversed(rows)), now=NOW)

    skipped = sum(selection.skipped[reason] for reason in SKIP_REASONS)
    assert selection.examined == len({r["id"] for r in rows})
    assert len(selection.candidates) + skipped + selection.kept == selection.examined
    assert len(set(selection.ids())) == len(selection.ids()) <= cap
    order = [(c.created, c.id) for c in selection.candidates]
    assert order == sorted(order)
    assert all(
        c.application == OWN_APP and c.action != "Allowed" for c in selection.candidates
    )
    if not any(r["id"] == s["id"] and r != s for r in rows for s in rows):
        assert again == selection


# --- policy parsing --------------------------------------------------------


def test_defaults_are_safe() -> None:
    parsed = policy()

    assert parsed.mode == "preview" and not parsed.deletes
    assert (parsed.max_per_run, parsed.next_run_within_hours) == (1000, 24)
    assert parsed.creators == (OWN_ID,) and not parsed.include_allowed
    assert parsed.to_dict()["rules"] == {"olderThanDays": 30}


def test_a_full_policy_parses() -> None:
    parsed = policy(
        owners={"applications": [OWN_APP], "creators": ["a@contoso.com"]},
        includeAllowed=True,
        indicatorTypes=["Url", "DomainName"],
        actions=["Block", "Allowed"],
        rules={"olderThanDays": 180, "noExpiryOlderThanDays": 90, "keepBelow": 14000},
        maxPerRun=15000,
        mode="delete",
        nextRunWithinHours=0,
    )

    assert parsed.deletes and parsed.keep_below == 14000
    assert parsed.indicator_types == ("Url", "DomainName")


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (
            {"rules": {"olderThanDays": 0}},
            "rules.olderThanDays must be a whole number >= 1",
        ),
        (
            {"rules": {"olderThanDays": 1.5}},
            "rules.olderThanDays must be a whole number",
        ),
        (
            {"rules": {"olderThanDays": True}},
            "rules.olderThanDays must be a whole number",
        ),
        (
            {"rules": {"noExpiryOlderThanDays": "30"}},
            "rules.noExpiryOlderThanDays must",
        ),
        ({"rules": {"keepBelow": 15001}}, "rules.keepBelow must be at most 15000"),
        ({"rules": {"keepBelow": -1}}, "rules.keepBelow must be a whole number >= 0"),
        ({"rules": {}}, "rules must hold at least one of"),
        ({"rules": []}, "rules must be an object"),
        ({"rules": {"olderThan": 5}}, "rules.olderThan is not a known key (did you"),
        (
            {"rule": {"olderThanDays": 5}},
            "rule is not a known key (did you mean rules?)",
        ),
        ({"owners": {"application": ["x"]}}, "owners.application is not a known key"),
        ({"owners": {"applications": ["x", ""]}}, "owners.applications[1] must be"),
        ({"owners": {"creators": "me"}}, "owners.creators must be a list of strings"),
        ({"owners": {"creators": []}}, "owners must name at least one application"),
        ({"owners": []}, "owners must be an object"),
        ({"includeAllowed": "yes"}, "includeAllowed must be true or false"),
        ({"indicatorTypes": ["Ip"]}, "indicatorTypes[0] must be one of FileSha1"),
        ({"indicatorTypes": []}, "indicatorTypes must be a non-empty list"),
        ({"actions": ["Block", "Delete"]}, "actions[1] must be one of Allowed"),
        ({"actions": ["Allowed"]}, "actions[0] is Allowed, which stays protected"),
        ({"maxPerRun": 15001}, "maxPerRun must be at most 15000"),
        ({"maxPerRun": 0}, "maxPerRun must be a whole number >= 1"),
        ({"mode": "Delete"}, 'mode must be "delete" or "preview"'),
        ({"nextRunWithinHours": -1}, "nextRunWithinHours must be a whole number >= 0"),
    ],
)
def test_each_bad_setting_is_named_by_its_path(
    document: dict[str, Any], problem: str
) -> None:
    document.setdefault("rules", {"olderThanDays": 30})

    with pytest.raises(ValueError) as caught:
        CleanupPolicy.from_json(json.dumps(document), own_client_id=OWN_ID)

    assert problem in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    text = json.dumps(
        {"rules": {"olderThanDays": 0, "keepBelow": "x"}, "mode": "now", "extra": 1}
    )

    with pytest.raises(PolicyError) as caught:
        CleanupPolicy.from_json(text, own_client_id=OWN_ID)

    paths = [problem.split()[0] for problem in caught.value.problems]
    assert sorted(paths) == ["extra", "mode", "rules.keepBelow", "rules.olderThanDays"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [("{", "policy is not valid JSON"), ("[1]", "policy must be a JSON object")],
)
def test_text_that_is_not_a_json_object_is_refused(text: str, problem: str) -> None:
    with pytest.raises(PolicyError, match=problem):
        CleanupPolicy.from_json(text, own_client_id=OWN_ID)


def test_rules_are_required() -> None:
    with pytest.raises(PolicyError, match="rules is required"):
        CleanupPolicy.from_json("{}", own_client_id=OWN_ID)


# --- the seed tenant -------------------------------------------------------


@pytest.fixture(scope="module")
def seed() -> list[dict[str, Any]]:
    return load_seed(NOW)


@pytest.mark.parametrize(
    "owners",
    [{"applications": [OWN_APP], "creators": []}, None],
    ids=["app", "default"],
)
def test_only_our_apps_indicators_are_chosen_from_the_seed(
    seed: list[dict[str, Any]], owners: dict[str, Any] | None
) -> None:
    document: dict[str, Any] = {"rules": {"keepBelow": 0}, "maxPerRun": 15000}
    if owners is not None:
        document["owners"] = owners
    ours = [r for r in seed if r["application"] == OWN_APP]

    selection = select(policy(**document), seed, now=NOW)

    assert {c.application for c in selection.candidates} == {OWN_APP}
    assert all(c.action != "Allowed" for c in selection.candidates)
    protected = sum(1 for r in ours if r["action"] == "Allowed")
    leaving = selection.skipped["expiresBeforeNextRun"]
    assert len(selection.candidates) == len(ours) - protected - leaving
    assert selection.skipped["notOwned"] == len(seed) - len(ours)


def test_age_rules_over_the_seed_never_pick_allowed_or_foreign_indicators(
    seed: list[dict[str, Any]],
) -> None:
    owners = {"applications": [OWN_APP, OTHER_APP], "creators": []}
    rules = {"olderThanDays": 60, "noExpiryOlderThanDays": 10}

    selection = select(policy(owners=owners, rules=rules), seed, now=NOW)

    assert selection.candidates
    assert {c.application for c in selection.candidates} <= {OWN_APP, OTHER_APP}
    assert all(c.action != "Allowed" for c in selection.candidates)
    assert len(selection.candidates) == 1000
    assert selection.skipped["overRunCap"] > 0


# --- list_for_cleanup against the emulator ---------------------------------


class Tokens:
    def __init__(self, signer: TokenSigner) -> None:
        self.signer = signer

    def token(self, *, fresh: bool = False) -> str:
        token, _ = self.signer.issue(
            audience=AUDIENCE, tenant_id="t", app_id="a", roles=["Ti.ReadWrite.All"]
        )
        return token


class Shifting:
    """Deletes rows between two page reads of a listing, as a run would."""

    def __init__(
        self, inner: DefenderClient, doomed: list[list[int]], after_row: int
    ) -> None:
        self.inner = inner
        self.doomed = doomed
        self.after_row = after_row
        self.filters: list[str | None] = []

    def list_indicators(
        self, *, odata_filter: str | None = None, page_size: int = 10_000
    ) -> Iterator[dict[str, Any]]:
        self.filters.append(odata_filter)
        rows = self.inner.list_indicators(
            odata_filter=odata_filter, page_size=page_size
        )
        for position, row in enumerate(rows):
            yield row
            # Resuming past this row makes the client read the next page.
            if position == self.after_row and self.doomed:
                self.inner.batch_delete(self.doomed.pop(0))


@pytest.fixture(scope="module")
def running() -> Iterator[RunningEmulator]:
    config = EmulatorConfig(
        signer=TokenSigner(), list_limits="10000/60s", batch_delete_limits="1000/60s"
    )
    with start_emulator(config, seed=False) as server:
        yield server


@pytest.fixture
def tenant(
    running: RunningEmulator, seed: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    running.emulator.load(load_seed()[-1500:])
    running.emulator.reset_limits()
    return running.emulator.indicators()


@pytest.fixture
def api(running: RunningEmulator) -> Iterator[DefenderClient]:
    budget = InProcessBudget(
        {
            API_BATCH_DELETE: parse_rate_limits("1000/60s"),
            API_LIST: parse_rate_limits("10000/60s"),
        }
    )
    client = DefenderClient(running.url, Tokens(running.emulator.config.signer), budget)
    yield client
    client.close()


def own_ids(running: RunningEmulator) -> list[int]:
    rows = running.emulator.indicators()
    return sorted(int(r["id"]) for r in rows if r["application"] == OWN_APP)


APP_POLICY = {"owners": {"applications": [OWN_APP]}, "rules": {"olderThanDays": 1}}


def test_the_listing_is_narrowed_to_the_owners(
    running: RunningEmulator, tenant: list[dict[str, Any]], api: DefenderClient
) -> None:
    spy = Shifting(api, [], after_row=0)

    rows = list_for_cleanup(spy, policy(**APP_POLICY))

    assert spy.filters == [f"application in ('{OWN_APP}') or createdBy in ('{OWN_ID}')"]
    assert sorted(int(r["id"]) for r in rows) == own_ids(running)


def test_keep_below_lists_the_whole_tenant(
    tenant: list[dict[str, Any]], api: DefenderClient
) -> None:
    parsed = policy(rules={"keepBelow": 100})

    rows = list_for_cleanup(api, parsed)

    assert owner_filter(parsed) is None
    assert len(rows) == len(tenant)


def test_a_shift_between_pages_restarts_and_returns_each_row_once(
    running: RunningEmulator, tenant: list[dict[str, Any]], api: DefenderClient
) -> None:
    first_page = own_ids(running)[:100]
    spy = Shifting(api, [first_page[10:17]], after_row=99)

    rows = list_for_cleanup(spy, policy(**APP_POLICY), page_size=100)

    listed = [int(r["id"]) for r in rows]
    assert sorted(listed) == own_ids(running)
    assert len(listed) == len(set(listed))
    assert spy.filters.count(spy.filters[0]) > 2


def test_without_the_check_the_same_shift_loses_rows(
    running: RunningEmulator, tenant: list[dict[str, Any]], api: DefenderClient
) -> None:
    first_page = own_ids(running)[:100]
    spy = Shifting(api, [first_page[10:17]], after_row=99)
    odata = owner_filter(policy(**APP_POLICY))

    naive = [
        int(r["id"]) for r in spy.list_indicators(odata_filter=odata, page_size=100)
    ]

    assert len(set(own_ids(running)) - set(naive)) == 7


def test_a_listing_that_shifts_twice_gives_up(
    running: RunningEmulator, tenant: list[dict[str, Any]], api: DefenderClient
) -> None:
    ids = own_ids(running)
    spy = Shifting(api, [ids[10:13], ids[20:23]], after_row=99)

    with pytest.raises(ListingShiftedError):
        list_for_cleanup(spy, policy(**APP_POLICY), page_size=100)


def test_deleting_rows_already_read_on_the_last_page_needs_no_restart(
    running: RunningEmulator, tenant: list[dict[str, Any]], api: DefenderClient
) -> None:
    ids = own_ids(running)
    page_size = len(ids) - 10
    spy = Shifting(api, [ids[-5:]], after_row=page_size + 2)

    rows = list_for_cleanup(spy, policy(**APP_POLICY), page_size=page_size)

    assert len(rows) == len(ids)
    assert len(spy.filters) == 2


def test_a_listing_ending_on_a_full_page_is_checked_too(
    running: RunningEmulator, tenant: list[dict[str, Any]], api: DefenderClient
) -> None:
    ids = own_ids(running)
    spy = Shifting(api, [], after_row=0)

    rows = list_for_cleanup(spy, policy(**APP_POLICY), page_size=len(ids) // 2)

    assert len(rows) == len(ids) and len(ids) % 2 == 0
    assert len(spy.filters) == 3
