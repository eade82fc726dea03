"""GET /api/indicators: $filter, $top, $skip and @odata.nextLink."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

PORTAL_USER = "analyst1@contoso.com"
BEFORE_EVERY_EXPIRY = 1_795_000_000.0  # 2026-11-18, before the sample's expiries


@pytest.fixture
def sample(tenant, row, clock):
    """Five indicators that differ in every filterable field, all active."""
    clock.now = BEFORE_EVERY_EXPIRY
    tenant(
        row(
            1,
            indicatorValue="a1b2",
            indicatorType="FileSha256",
            action="BlockAndRemediate",
            severity="High",
            title="TI: emotet file hash",
            creationTimeDateTimeUtc="2026-01-01T00:00:00.0000001Z",
            expirationTime="2027-01-01T00:00:00Z",
            generateAlert=False,
        ),
        row(
            2,
            indicatorValue="evil.example",
            indicatorType="DomainName",
            action="Warn",
            severity="Low",
            title="TI: mythic domain",
            creationTimeDateTimeUtc="2026-06-01T12:00:00.5000000Z",
            expirationTime="2027-06-01T00:00:00Z",
            rbacGroupNames=["Servers"],
            rbacGroupIds=["4127"],
        ),
        row(
            3,
            indicatorValue="203.0.113.9",
            application=None,
            sourceType="User",
            createdBy=PORTAL_USER,
            createdByDisplayName="SOC Analyst 1",
            severity="Informational",
            title="Manual IP indicator",
            creationTimeDateTimeUtc="2026-09-15T08:30:00.2500000Z",
            rbacGroupNames=["Servers", "Kiosks"],
            rbacGroupIds=["4127", "4152"],
        ),
        row(
            4,
            indicatorValue="203.0.113.10",
            action="Audit",
            title="it's quoted",
            creationTimeDateTimeUtc="2026-10-01T00:00:00.0000000Z",
            expirationTime="2026-12-31T00:00:00Z",
        ),
        row(
            5,
            indicatorValue="http://bad.example/fre.php",
            indicatorType="Url",
            application="Microsoft Sentinel",
            createdByDisplayName="Microsoft Sentinel",
            severity="High",
            creationTimeDateTimeUtc="2026-11-20T00:00:00.0000000Z",
        ),
    )


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("severity eq 'High'", ["1", "5"]),
        ("severity ne 'High'", ["2", "3", "4"]),
        ("indicatorValue lt '3'", ["3", "4"]),
        ("indicatorValue le '203.0.113.10'", ["4"]),
        ("indicatorValue gt 'evil.example'", ["5"]),
        ("indicatorValue ge 'evil.example'", ["2", "5"]),
        ("indicatorType eq 'IpAddress' and action eq 'Audit'", ["4"]),
        ("action eq 'Warn' or severity eq 'Informational'", ["2", "3"]),
        ("not (severity eq 'High')", ["2", "3", "4"]),
        (
            "(severity eq 'High' or severity eq 'Low') and indicatorType ne 'Url'",
            ["1", "2"],
        ),
        (
            "severity eq 'High' or severity eq 'Low' and indicatorType ne 'Url'",
            ["1", "2", "5"],
        ),
        ("indicatorValue in ('a1b2', 'evil.example', 'nothing')", ["1", "2"]),
        ("indicatorValue in ('203.0.113.9')", ["3"]),
        ("indicatorType in ('Url',)", ["5"]),
        ("startswith(title,'TI: ')", ["1", "2", "5"]),
        ("startswith(indicatorValue, '203.0.113.')", ["3", "4"]),
        ("not startswith(title, 'TI')", ["3", "4"]),
        ("title eq 'it''s quoted'", ["4"]),
        ("generateAlert eq false", ["1"]),
        ("generateAlert", ["2", "3", "4", "5"]),
        ("not generateAlert", ["1"]),
        ("createdBy eq 'analyst1@contoso.com'", ["3"]),
        ("createdByDisplayName eq 'Microsoft Sentinel'", ["5"]),
        ("application eq 'Microsoft Sentinel'", ["5"]),
        ("rbacGroupIds eq '4127'", ["2", "3"]),
        ("rbacGroupNames eq 'Kiosks'", ["3"]),
        ("rbacGroupIds ne '4127'", ["1", "4", "5"]),
        ("rbacGroupIds in ('4152', '4131')", ["3"]),
        ("startswith(rbacGroupNames, 'Kio')", ["3"]),
    ],
)
def test_filters_select_the_matching_rows(api, sample, expression, expected):
    assert api.listed_ids(**{"$filter": expression}) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("expirationTime lt 2027-01-01T00:00:00Z", ["4"]),
        ("expirationTime le 2027-01-01T00:00:00Z", ["1", "4"]),
        ("expirationTime gt 2027-01-01T00:00:00.0000001Z", ["2"]),
        ("expirationTime ge 2027-01-01", ["1", "2"]),
        ("expirationTime eq 2027-06-01T00:00:00Z", ["2"]),
        ("expirationTime eq 2027-06-01T02:00:00+02:00", ["2"]),
        ("expirationTime lt '2027-01-01T00:00:00Z'", ["4"]),
        ("creationTimeDateTimeUtc ge 2026-09-15T08:30:00.25Z", ["3", "4", "5"]),
        ("creationTimeDateTimeUtc gt 2026-01-01T00:00:00Z", ["2", "3", "4", "5"]),
        (
            "creationTimeDateTimeUtc ge 2026-06-01"
            " and creationTimeDateTimeUtc lt 2026-10-01",
            ["2", "3"],
        ),
    ],
)
def test_datetimes_compare_as_datetimes(api, sample, expression, expected):
    assert api.listed_ids(**{"$filter": expression}) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("expirationTime eq null", ["3", "5"]),
        ("expirationTime ne null", ["1", "2", "4"]),
        ("application eq null", ["3"]),
        ("null eq application", ["3"]),
        ("expirationTime lt 2030-01-01T00:00:00Z", ["1", "2", "4"]),
        ("expirationTime gt 2000-01-01T00:00:00Z", ["1", "2", "4"]),
        ("expirationTime le null", ["3", "5"]),
        ("expirationTime lt null", []),
        ("startswith(application, 'MISP')", ["1", "2", "4"]),
        ("not startswith(application, 'MISP')", ["5"]),
        (
            "not startswith(application, 'MISP') or severity eq 'Informational'",
            ["3", "5"],
        ),
        ("application in ('Microsoft Sentinel', null)", ["3", "5"]),
    ],
)
def test_null_compares_as_odata_does(api, sample, expression, expected):
    assert api.listed_ids(**{"$filter": expression}) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "id eq '1'",
        "description eq 'Imported from feed'",
        "severity eq",
        "severity eq 'High",
        "severity eq 'High' and",
        "(severity eq 'High'",
        "severity eq 3",
        "severity eq true",
        "expirationTime gt 'soon'",
        "expirationTime gt 2026-02-30T00:00:00Z",
        "contains(title, 'TI')",
        "tolower(title) eq 'x'",
        "rbacGroupIds/any(g: g eq '4127')",
        "rbacGroupIds gt '4127'",
        "severity",
        "not severity eq 'High'",
        "severity add 1 eq 2",
        "",
    ],
)
def test_bad_filters_answer_400_with_defenders_error_body(api, sample, expression):
    response = api.list(**{"$filter": expression})

    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"code", "message", "target"}
    assert error["code"] == "BadRequest"


def test_the_body_is_an_odata_collection(api, running, sample):
    body = api.list().json()

    assert body["@odata.context"] == f"{running.url}/api/$metadata#Indicators"
    assert [row["id"] for row in body["value"]] == ["1", "2", "3", "4", "5"]
    assert "@odata.nextLink" not in body


def test_top_and_skip_page_through_with_next_links(api, sample):
    first = api.list(**{"$top": "2", "$filter": "severity ne 'Low'"}).json()
    link = first["@odata.nextLink"]
    query = parse_qs(urlsplit(link).query)

    second = api.session.get(link, timeout=10).json()

    assert [r["id"] for r in first["value"]] == ["1", "3"]
    assert query == {"$skip": ["2"], "$top": ["2"], "$filter": ["severity ne 'Low'"]}
    assert link.startswith(api.base_url + "/api/indicators?")
    assert [r["id"] for r in second["value"]] == ["4", "5"]
    assert "@odata.nextLink" not in second


def test_skip_past_the_end_returns_an_empty_page(api, sample):
    body = api.list(**{"$skip": "50"}).json()

    assert body["value"] == []
    assert "@odata.nextLink" not in body


@pytest.mark.parametrize(
    "params",
    [
        {"$top": "0"},
        {"$top": "10001"},
        {"$top": "ten"},
        {"$top": "-1"},
        {"$skip": "-1"},
        {"$skip": "1.5"},
        {"$orderby": "id"},
        {"$select": "id"},
    ],
)
def test_bad_or_unsupported_query_options_answer_400(api, sample, params):
    response = api.list(**params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"


def test_top_of_10000_is_allowed(api, sample):
    assert api.list(**{"$top": "10000"}).status_code == 200


def test_an_app_with_only_ti_readwrite_sees_only_its_own_indicators(
    client_for, tenant, row, app_id
):
    other = "55555555-5555-5555-5555-555555555555"
    tenant(row(1), row(2, createdBy=other), row(3), row(4, createdBy=PORTAL_USER))

    own = client_for(roles=("Ti.ReadWrite",))
    everything = client_for(roles=("Ti.ReadWrite", "Ti.ReadWrite.All"))

    assert own.listed_ids() == ["1", "3"]
    assert own.listed_ids(**{"$filter": "createdBy ne 'x'", "$top": "1"}) == ["1"]
    assert everything.listed_ids() == ["1", "2", "3", "4"]


def test_an_app_with_only_ti_readwrite_cannot_delete_others_indicators(
    client_for, emulator, tenant, row
):
    tenant(row(1), row(2, createdBy=PORTAL_USER))
    own = client_for(roles=("Ti.ReadWrite",))

    assert own.batch_delete(["1", "2"]).status_code == 404
    assert own.delete("/api/indicators/2").status_code == 404
    assert own.batch_delete(["1"]).status_code == 204
    assert [r["id"] for r in emulator.indicators()] == ["2"]
