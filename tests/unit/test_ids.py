from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import RequestError
from shared.ids import MAX_IDS_PER_BATCH, chunk_ids, parse_indicator_ids


def test_strings_integers_and_padding_are_accepted_and_folded() -> None:
    assert parse_indicator_ids(["12", 12, " 13 ", "0012", 14]) == [12, 13, 14]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("abc", "not a positive integer"),
        ("-5", "not a positive integer"),
        (0, "not a positive integer"),
        ("", "empty string"),
        ("1.5", "not a positive integer"),
        (1.5, "a number with a fraction"),
        (True, "boolean"),
        (None, "null"),
        ({"id": 1}, "an object"),
        ([1], "an array"),
        ("9" * 30, "too large"),
        (2**64, "too large"),
        ("١٢", "not a positive integer"),
    ],
)
def test_invalid_entry_rejects_the_whole_request_naming_it(
    value: object, fragment: str
) -> None:
    with pytest.raises(RequestError) as caught:
        parse_indicator_ids(["1", value, "2"])

    error = caught.value
    assert error.status == 400
    assert [p.where for p in error.problems] == ["IndicatorIds[1]"]
    assert fragment in error.problems[0].message


def test_leading_zeros_do_not_count_towards_the_length_limit() -> None:
    assert parse_indicator_ids(["0" * 40 + "7", "9" * 18]) == [7, 10**18 - 1]


def test_every_bad_entry_is_named_up_to_a_cap() -> None:
    with pytest.raises(RequestError) as caught:
        parse_indicator_ids(["x"] * 1000)

    assert len(caught.value.problems) == 50
    assert "1000 invalid" in caught.value.message


@pytest.mark.parametrize("value", [[], {}, "1,2", None])
def test_missing_or_empty_list_is_rejected(value: object) -> None:
    with pytest.raises(RequestError):
        parse_indicator_ids(value)


def test_chunks_hold_at_most_500() -> None:
    chunks = list(chunk_ids(list(range(1, 1202))))

    assert [len(c) for c in chunks] == [500, 500, 201]


@given(st.lists(st.one_of(st.integers(1, 10**12), st.integers(1, 10**12).map(str))))
def test_parsing_keeps_each_id_once_in_first_seen_order(values: list[object]) -> None:
    if not values:
        return
    ids = parse_indicator_ids(values)

    expected: list[int] = []
    for value in values:
        number = int(str(value))
        if number not in expected:
            expected.append(number)
    assert ids == expected


@given(st.lists(st.integers(1, 10**9), unique=True), st.integers(1, MAX_IDS_PER_BATCH))
def test_chunking_loses_and_repeats_nothing(ids: list[int], size: int) -> None:
    chunks = list(chunk_ids(ids, size))

    assert [i for chunk in chunks for i in chunk] == ids
    assert all(1 <= len(chunk) <= size for chunk in chunks)
