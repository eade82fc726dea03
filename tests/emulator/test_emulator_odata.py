"""The $filter evaluator, called directly: any text either compiles or
raises FilterError, and compiled filters agree with plain Python."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator import FilterError, compile_filter
from emulator.odata import FILTERABLE_FIELDS

ROWS = [
    {"severity": "High", "title": "a", "application": None, "generateAlert": True},
    {"severity": "Low", "title": "b", "application": "x", "generateAlert": False},
    {"severity": "Medium", "title": "ab", "application": "y", "generateAlert": True},
]

_odata_text = st.lists(
    st.sampled_from(
        [*"()',/ -:.ZT019", " eq ", " and ", "not ", " in ", "null", "title", "id"]
    ),
    max_size=30,
).map("".join)


@settings(max_examples=300)
@given(text=st.one_of(st.text(max_size=40), _odata_text))
def test_any_text_compiles_or_raises_filter_error(text):
    try:
        keep = compile_filter(text)
    except FilterError:
        return
    for row in ROWS:
        assert keep(row) in (True, False)


_severity = st.sampled_from(["High", "Low", "Medium", "None"])


@given(first=_severity, second=_severity, negate=st.booleans())
def test_eq_or_and_not_agree_with_python(first, second, negate):
    expression = f"severity eq '{first}' or severity eq '{second}'"
    if negate:
        expression = f"not ({expression})"

    kept = [row for row in ROWS if compile_filter(expression)(row)]

    expected = [row for row in ROWS if (row["severity"] in (first, second)) != negate]
    assert kept == expected


def test_the_documented_fields_are_the_filterable_ones():
    assert {
        "application",
        "createdByDisplayName",
        "expirationTime",
        "generateAlert",
        "title",
        "rbacGroupNames",
        "rbacGroupIds",
        "indicatorValue",
        "indicatorType",
        "creationTimeDateTimeUtc",
        "createdBy",
        "action",
        "severity",
    } == FILTERABLE_FIELDS


@pytest.mark.parametrize("field", ["id", "lastUpdateTime", "sourceType", "Severity"])
def test_other_fields_are_refused_by_name(field):
    with pytest.raises(FilterError, match=field):
        compile_filter(f"{field} eq 'x'")


def test_a_long_or_chain_is_evaluated_without_recursion():
    expression = " or ".join(f"title eq 'v{i}'" for i in range(2000))

    keep = compile_filter(expression + " or title eq 'ab'")

    assert [row["title"] for row in ROWS if keep(row)] == ["ab"]


def test_absurdly_deep_nesting_is_refused():
    with pytest.raises(FilterError, match="nests deeper"):
        compile_filter("not " * 500 + "generateAlert")
