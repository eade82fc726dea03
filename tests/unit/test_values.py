"""IOC values: normalisation, variants, filters, and resolution over HTTP."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator import EmulatorConfig, RunningEmulator, load_seed, start_emulator
from localdev.tokens import TokenSigner
from shared import http_api
from shared.defender import API_BATCH_DELETE, API_LIST, DefenderClient
from shared.pacing import InProcessBudget
from shared.settings import parse_rate_limits
from shared.values import (
    INDICATOR_TYPES,
    MAX_FILTER_CHARS,
    MAX_VALUES_PER_FILTER,
    Resolution,
    infer_type,
    normalise,
    resolve_values,
    value_filters,
    variants,
)

AUDIENCE = "https://api.securitycenter.microsoft.com"
SHA256 = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
MD5 = "D41D8CD98F00B204E9800998ECF8427E"
SHA1 = "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709"
_LITERAL = re.compile(r"'((?:[^']|'')*)'")


# --- normalise -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "indicator_type", "expected"),
    [
        (f"  {SHA256} ", "FileSha256", SHA256.lower()),
        (MD5, "FileMd5", MD5.lower()),
        (SHA1, "CertificateThumbprint", SHA1.lower()),
        ("Evil.EXAMPLE.", "DomainName", "evil.example"),
        ("evil.example..", "DomainName", "evil.example."),
        ("ÉVIL.example", "DomainName", "évil.example"),
        ("xn--vil-bma.example", "DomainName", "xn--vil-bma.example"),
        ("203.0.113.7", "IpAddress", "203.0.113.7"),
        ("010.0.0.1", "IpAddress", "010.0.0.1"),
        ("2001:DB8:0:0::0001", "IpAddress", "2001:db8::1"),
        ("10.0.0.0/8", "IpAddress", "10.0.0.0/8"),
        ("HTTP://Evil.Example./Login.PHP", "Url", "http://evil.example/Login.PHP"),
        ("https://evil.example:443", "Url", "https://evil.example/"),
        ("http://evil.example:8080/a", "Url", "http://evil.example:8080/a"),
        ("http://evil.example?Q=1", "Url", "http://evil.example/?Q=1"),
        ("http://evil.example/?", "Url", "http://evil.example/"),
        ("http://User@EVIL.example/", "Url", "http://User@evil.example/"),
        ("http://[2001:DB8::0001]:80/x", "Url", "http://[2001:db8::1]/x"),
        ("http://evil.example:port/", "Url", "http://evil.example:port/"),
        ("Evil.Example./Path", "Url", "evil.example/Path"),
        ("Evil.Example", "Url", "evil.example/"),
        ("\tevil.example\n", None, "evil.example"),
    ],
)
def test_normalise_gives_the_canonical_spelling(
    value: str, indicator_type: str | None, expected: str
) -> None:
    assert normalise(value, indicator_type) == expected


@pytest.mark.parametrize(
    ("first", "second", "indicator_type"),
    [
        ("http://evil.example/a", "https://evil.example/a", "Url"),
        ("http://evil.example/a", "evil.example/a", "Url"),
        ("http://evil.example/a", "http://evil.example/a/", "Url"),
        ("http://evil.example/A", "http://evil.example/a", "Url"),
        ("http://evil.example/%7E", "http://evil.example/~", "Url"),
        ("http://evil.example:8080/", "http://evil.example/", "Url"),
        ("évil.example", "xn--vil-bma.example", "DomainName"),
        ("www.evil.example", "evil.example", "DomainName"),
        ("010.0.0.1", "10.0.0.1", "IpAddress"),
        ("010.0.0.1", "8.0.0.1", "IpAddress"),
        ("::ffff:10.0.0.1", "10.0.0.1", "IpAddress"),
        ("DA:39:A3:EE", "da39a3ee", "CertificateThumbprint"),
        ("evil .example", "evil.example", "DomainName"),
    ],
)
def test_these_spellings_are_not_the_same_value(
    first: str, second: str, indicator_type: str
) -> None:
    assert normalise(first, indicator_type) != normalise(second, indicator_type)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (MD5, "FileMd5"),
        (SHA1, "FileSha1"),
        (SHA256, "FileSha256"),
        ("203.0.113.7", "IpAddress"),
        ("010.0.0.1", "IpAddress"),
        ("2001:db8::1", "IpAddress"),
        ("10.0.0.0/8", "IpAddress"),
        ("https://evil.example", "Url"),
        ("evil.example/path", "Url"),
        ("evil.example", "DomainName"),
        ("deadbeef", "DomainName"),
    ],
)
def test_the_type_is_inferred_from_the_shape(value: str, expected: str) -> None:
    assert infer_type(value) == expected


def test_an_inferred_type_normalises_like_the_given_one() -> None:
    assert normalise(SHA256) == normalise(SHA256, "FileSha256")
    assert normalise("HTTPS://Evil.Example") == "https://evil.example/"


def test_the_types_are_the_ones_the_http_api_accepts() -> None:
    assert set(INDICATOR_TYPES) == set(http_api.INDICATOR_TYPES)


@pytest.mark.parametrize(("value", "indicator_type"), [("  ", None), ("x", "Hostname")])
def test_a_blank_value_or_unknown_type_is_refused(
    value: str, indicator_type: str | None
) -> None:
    with pytest.raises(ValueError):
        normalise(value, indicator_type)


# --- variants --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "indicator_type", "expected"),
    [
        (SHA256.lower(), "FileSha256", {SHA256.lower(), SHA256}),
        ("Evil.example.", "DomainName", {"evil.example", "evil.example."}),
        ("http://evil.example", "Url", {"http://evil.example/", "http://evil.example"}),
        ("2001:db8::1", "IpAddress", {"2001:0db8:0000:0000:0000:0000:0000:0001"}),
    ],
)
def test_variants_hold_the_spellings_defender_may_store(
    value: str, indicator_type: str, expected: set[str]
) -> None:
    spellings = variants(value, indicator_type)

    assert spellings[0] == normalise(value, indicator_type)
    assert expected <= set(spellings)


def test_a_path_url_has_no_trailing_slash_variant() -> None:
    assert variants("http://evil.example/a", "Url") == ["http://evil.example/a"]


@given(
    value=st.text(min_size=1, max_size=60).filter(str.strip),
    indicator_type=st.sampled_from([None, *INDICATOR_TYPES]),
)
def test_every_variant_is_the_same_value(
    value: str, indicator_type: str | None
) -> None:
    kind = indicator_type or infer_type(value)
    spellings = variants(value, indicator_type)

    assert len(spellings) == len(set(spellings))
    assert {normalise(s, kind) for s in spellings} == {normalise(value, kind)}
    if indicator_type is None:
        assert {infer_type(s) for s in spellings} == {kind}


# --- value_filters ---------------------------------------------------------


def literals(odata: str, typed: bool) -> list[str]:
    """The string literals of an `indicatorValue in (...)` filter."""
    found = [match.replace("''", "'") for match in _LITERAL.findall(odata)]
    return found[:-1] if typed else found


def test_filters_hold_at_most_six_values() -> None:
    values = [f"host{i}.example" for i in range(13)]

    filters = value_filters(values, None)

    assert len(filters) == 3
    assert literals(filters[0], False)[:2] == ["host0.example", "host0.example."]
    assert filters[0].startswith("indicatorValue in ('host0.example',")


def test_a_type_adds_an_indicator_type_clause() -> None:
    [odata] = value_filters(["evil.example"], "DomainName")

    assert odata == (
        "indicatorValue in ('evil.example','evil.example.') "
        "and indicatorType eq 'DomainName'"
    )


def test_single_quotes_are_doubled() -> None:
    [odata] = value_filters(["http://evil.example/it's"], "Url")

    assert "'http://evil.example/it''s'" in odata
    assert literals(odata, True) == ["http://evil.example/it's"]


def test_equal_values_are_asked_for_once() -> None:
    [odata] = value_filters(["Evil.example", "evil.example.", "EVIL.EXAMPLE"], None)

    spelled = literals(odata, False)
    assert len(spelled) == len(set(spelled))
    assert {normalise(s) for s in spelled} == {"evil.example"}


def test_long_values_are_split_by_characters() -> None:
    values = [f"http://evil.example/{i}/{'a' * 1500}" for i in range(5)]

    filters = value_filters(values, "Url")

    # About 1,530 characters a value: three fit under 5,000, not six.
    assert [len(literals(odata, True)) for odata in filters] == [3, 2]
    assert all(len(odata) <= MAX_FILTER_CHARS for odata in filters)


def test_a_value_too_long_for_any_filter_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        value_filters(["a" * MAX_FILTER_CHARS + ".example"], "DomainName")


ioc_values = st.one_of(
    st.text(min_size=1, max_size=40).filter(str.strip),
    st.from_regex(r"[0-9a-fA-F]{64}", fullmatch=True),
    st.from_regex(r"[a-zA-Z0-9'-]{1,20}\.[a-z]{2,5}\.?", fullmatch=True),
    st.from_regex(
        r"https?://[a-zA-Z0-9.]{1,20}(/[a-zA-Z0-9'/]{0,400})?", fullmatch=True
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(ioc_values, min_size=1, max_size=40),
    indicator_type=st.sampled_from([None, "Url", "DomainName"]),
)
def test_every_value_lands_in_exactly_one_filter(
    values: list[str], indicator_type: str | None
) -> None:
    filters = value_filters(values, indicator_type)
    per_filter = [literals(odata, indicator_type is not None) for odata in filters]

    assert all(len(odata) <= MAX_FILTER_CHARS for odata in filters)
    every = Counter(s for spelled in per_filter for s in spelled)
    assert all(count == 1 for count in every.values())
    keys: list[set[tuple[str, str]]] = [set() for _ in filters]
    for value in values:
        spellings = set(variants(value, indicator_type))
        holding = [
            i for i, spelled in enumerate(per_filter) if spellings <= set(spelled)
        ]
        assert len(holding) == 1
        kind = indicator_type or infer_type(value)
        keys[holding[0]].add((kind, normalise(value, kind)))
    assert all(len(held) <= MAX_VALUES_PER_FILTER for held in keys)


# --- resolve_values against the emulator -----------------------------------


class Tokens:
    def __init__(self, signer: TokenSigner) -> None:
        self.signer = signer

    def token(self, *, fresh: bool = False) -> str:
        token, _ = self.signer.issue(
            audience=AUDIENCE, tenant_id="t", app_id="a", roles=["Ti.ReadWrite.All"]
        )
        return token


@pytest.fixture(scope="module")
def running() -> Iterator[RunningEmulator]:
    config = EmulatorConfig(signer=TokenSigner(), list_limits="10000/60s")
    with start_emulator(config, seed=False) as server:
        yield server


def _respelled(row: dict[str, Any], new_id: int, **changes: Any) -> dict[str, Any]:
    return {**row, "id": str(new_id), **changes}


@pytest.fixture(scope="module")
def seed_tenant() -> list[dict[str, Any]]:
    """Every duplicated seed value, 1,500 other rows, and re-spelled copies."""
    seed = load_seed()
    pairs = Counter((r["indicatorType"], r["indicatorValue"]) for r in seed)
    twice = [r for r in seed if pairs[(r["indicatorType"], r["indicatorValue"])] > 1]
    others = [r for r in seed[:3000:2] if r not in twice]
    rows = twice + others
    first = {r["indicatorType"]: r for r in others}
    top = max(int(r["id"]) for r in seed)
    rows += [
        _respelled(
            first["FileSha256"],
            top + 1,
            indicatorValue=first["FileSha256"]["indicatorValue"].upper(),
        ),
        _respelled(
            first["DomainName"],
            top + 2,
            indicatorValue=first["DomainName"]["indicatorValue"] + ".",
        ),
        _respelled(first["Url"], top + 3, indicatorValue="http://root.example"),
        _respelled(first["Url"], top + 4, indicatorValue="http://q.example/it's"),
        _respelled(
            first["IpAddress"],
            top + 5,
            indicatorType="DomainName",
        ),
    ]
    return rows


@pytest.fixture
def tenant(
    running: RunningEmulator, seed_tenant: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    running.emulator.load(seed_tenant)
    running.emulator.reset_limits()
    running.emulator.clear_calls()
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


def ids_of(rows: list[dict[str, Any]]) -> list[int]:
    return sorted(int(r["id"]) for r in rows)


def by_value(tenant: list[dict[str, Any]]) -> dict[tuple[str, str], list[int]]:
    found: dict[tuple[str, str], list[int]] = {}
    for row in tenant:
        key = (
            row["indicatorType"],
            normalise(row["indicatorValue"], row["indicatorType"]),
        )
        found.setdefault(key, []).append(int(row["id"]))
    return found


def list_calls(running: RunningEmulator) -> int:
    return sum(1 for call in running.emulator.calls() if call["api"] == "list")


def test_a_value_held_twice_resolves_to_both_ids(
    running: RunningEmulator, tenant: list[dict[str, Any]], api: DefenderClient
) -> None:
    doubled = [k for k, ids in by_value(tenant).items() if len(ids) == 2][:4]

    resolution = resolve_values(api, [value for _, value in doubled])

    assert not resolution.full_listing
    assert list_calls(running) == 1
    for kind, value in doubled:
        assert ids_of(resolution.matches[value]) == by_value(tenant)[(kind, value)]
    assert len(resolution.ids()) == 8


def test_every_duplicated_seed_value_resolves_to_both_ids_by_full_listing(
    running: RunningEmulator, tenant: list[dict[str, Any]], api: DefenderClient
) -> None:
    doubled = {k: ids for k, ids in by_value(tenant).items() if len(ids) == 2}
    values = [value for _, value in doubled]

    resolution = resolve_values(api, values)

    assert resolution.full_listing
    assert list_calls(running) == 1
    assert len(doubled) >= 150
    assert not resolution.unmatched
    assert len(resolution.ids()) == 2 * len(doubled)


def test_case_and_trailing_dot_spellings_match(
    tenant: list[dict[str, Any]], api: DefenderClient
) -> None:
    rows = {int(r["id"]): r for r in tenant}
    top = max(rows)
    upper_hash = rows[top - 4]["indicatorValue"]
    dotted = rows[top - 3]["indicatorValue"]
    requested = [upper_hash.lower(), dotted.rstrip(".").upper(), "HTTP://Root.Example/"]

    resolution = resolve_values(api, requested)

    assert top - 4 in ids_of(resolution.matches[upper_hash.lower()])
    assert top - 3 in ids_of(resolution.matches[dotted.rstrip(".").upper()])
    assert ids_of(resolution.matches["HTTP://Root.Example/"]) == [top - 2]


def test_a_quoted_value_is_found_through_its_escaped_filter(
    tenant: list[dict[str, Any]], api: DefenderClient
) -> None:
    resolution = resolve_values(api, ["http://q.example/it's"], "Url")

    assert len(resolution.ids()) == 1


def test_a_type_excludes_indicators_of_other_types(
    tenant: list[dict[str, Any]], api: DefenderClient
) -> None:
    copy = max(tenant, key=lambda r: int(r["id"]))
    value = copy["indicatorValue"]

    typed = resolve_values(api, [value], "IpAddress")
    untyped = resolve_values(api, [value])

    assert {r["indicatorType"] for r in typed.matches[value]} == {"IpAddress"}
    assert {r["indicatorType"] for r in untyped.matches[value]} == {
        "IpAddress",
        "DomainName",
    }


def test_values_no_indicator_carries_are_reported_unmatched(
    tenant: list[dict[str, Any]], api: DefenderClient
) -> None:
    present = tenant[0]["indicatorValue"]

    resolution = resolve_values(api, ["198.51.100.254", present, "gone.example"])

    assert resolution.unmatched == ["198.51.100.254", "gone.example"]
    assert list(resolution.matches) == [present]


def test_equal_requests_share_their_indicators_and_fold_ids(
    tenant: list[dict[str, Any]], api: DefenderClient
) -> None:
    domain = next(r for r in tenant if r["indicatorType"] == "DomainName")
    value = domain["indicatorValue"]

    resolution = resolve_values(api, [value, value.upper(), value + "."])

    assert len(resolution.matches) == 3
    assert resolution.ids() == ids_of(resolution.matches[value])


def test_the_full_listing_answers_like_the_filters(
    running: RunningEmulator, tenant: list[dict[str, Any]], api: DefenderClient
) -> None:
    doubled = [v for (_, v), ids in by_value(tenant).items() if len(ids) == 2][:20]
    singles = [r["indicatorValue"] for r in tenant[-40:]]
    spelled = [v.upper() for v in singles[:5]] + [s + "." for s in singles[5:8]]
    requested = [*doubled, *singles, *spelled, "198.51.100.254", "nothing.example"]

    filtered = resolve_values(api, requested, full_listing_threshold=10_000)
    filter_calls = list_calls(running)
    listed = resolve_values(api, requested, full_listing_threshold=0)

    assert (filtered.full_listing, listed.full_listing) == (False, True)
    assert filter_calls == len(value_filters(requested, None))
    assert same_answer(filtered, listed)


def test_the_full_listing_with_a_type_answers_like_the_filters(
    tenant: list[dict[str, Any]], api: DefenderClient
) -> None:
    urls = [r["indicatorValue"] for r in tenant if r["indicatorType"] == "Url"]

    filtered = resolve_values(api, urls[:30], "Url", full_listing_threshold=10_000)
    listed = resolve_values(api, urls[:30], "Url", full_listing_threshold=0)

    assert same_answer(filtered, listed)
    assert filtered.ids()


def same_answer(first: Resolution, second: Resolution) -> bool:
    def shape(resolution: Resolution) -> dict[str, list[int]]:
        return {value: ids_of(rows) for value, rows in resolution.matches.items()}

    return shape(first) == shape(second) and first.unmatched == second.unmatched
