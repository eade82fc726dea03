"""Sliding-window limits per (tenant, app) and API group, with Retry-After."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator import RateLimit, parse_limits
from emulator.limits import SlidingWindowLimiter

OTHER_APP = "44444444-4444-4444-4444-444444444444"
# Adding a wait to a time can round a hair short of the window's end.
FLOAT_SLACK_S = 1e-6


def test_the_default_limits_are_defenders(emulator):
    config = emulator.config

    assert config.batch_delete_limits == "30/60s,1500/3600s"
    assert config.list_limits == "100/60s,1500/3600s"
    assert config.import_limits == "30/60s"


def test_the_call_over_the_limit_answers_429_with_retry_after(api, emulator, clock):
    emulator.configure(batch_delete_limits="3/10s")
    statuses = []
    for _ in range(3):
        statuses.append(api.batch_delete(["1"]).status_code)
        clock.advance(1)
    clock.advance(1.5)  # the oldest call leaves the window 5.5 s from now

    throttled = api.batch_delete(["1"])

    assert statuses == [404, 404, 404]
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "6"
    assert throttled.json()["error"]["code"] == "TooManyRequests"


def test_a_call_is_admitted_once_the_oldest_leaves_the_window(api, emulator, clock):
    emulator.configure(list_limits="2/10s")
    api.list()
    clock.advance(4)
    api.list()
    assert api.list().status_code == 429

    clock.advance(6)  # now exactly 10 s after the first call

    assert api.list().status_code == 200
    assert api.list().status_code == 429


def test_throttled_calls_are_not_counted(api, emulator, clock):
    emulator.configure(list_limits="2/10s")
    api.list()
    clock.advance(1)
    api.list()
    clock.advance(1)
    assert api.list().status_code == 429  # at 2 s: would push the window out

    clock.advance(8.5)
    assert api.list().status_code == 200  # at 10.5 s
    clock.advance(1)

    assert api.list().status_code == 200  # at 11.5 s, only 10.5 s is counted


def test_every_window_must_have_room(api, emulator, clock):
    emulator.configure(list_limits="2/1s,3/100s")
    for _ in range(3):
        assert api.list().status_code == 200
        clock.advance(1)

    response = api.list()

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "97"


def test_budgets_are_per_app_and_tenant(client_for, emulator):
    emulator.configure(batch_delete_limits="1/60s")
    client_for().batch_delete(["1"])

    assert client_for().batch_delete(["1"]).status_code == 429
    assert client_for(app_id=OTHER_APP).batch_delete(["1"]).status_code == 404
    assert client_for(tenant_id="other-tenant").batch_delete(["1"]).status_code == 404


def test_list_delete_and_submit_share_a_budget_apart_from_batch_delete(api, emulator):
    emulator.configure(list_limits="2/60s", batch_delete_limits="1/60s")
    api.list()
    api.delete("/api/indicators/1")

    submitted = api.post("/api/indicators", json={})

    assert submitted.status_code == 429
    assert api.batch_delete(["1"]).status_code == 404
    assert api.batch_delete(["1"]).status_code == 429


def test_import_has_its_own_budget(api, emulator):
    emulator.configure(import_limits="1/60s", list_limits="1/60s")
    api.list()

    assert (
        api.post("/api/indicators/import", json={"Indicators": []}).status_code == 400
    )
    assert api.post("/api/indicators/import", json={}).status_code == 429


def test_retry_after_is_honest_on_the_real_clock(client_for, emulator, signer):
    emulator.configure(clock=time.time, list_limits="3/1s")
    api = client_for()
    for _ in range(3):
        assert api.list().status_code == 200

    throttled = api.list()
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "1"
    time.sleep(int(throttled.headers["Retry-After"]))

    assert api.list().status_code == 200


def test_reset_limits_forgets_counted_calls(api, emulator, control):
    emulator.configure(list_limits="1/60s")
    api.list()
    assert api.list().status_code == 429

    assert control.delete("/_emulator/limits").status_code == 204

    assert api.list().status_code == 200


def test_changing_a_limit_starts_its_count_afresh(api, emulator):
    emulator.configure(list_limits="1/60s")
    api.list()

    emulator.configure(list_limits="2/60s")

    assert api.list().status_code == 200


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30/60s", (RateLimit(30, 60.0),)),
        (" 30 / 60s , 1500/3600s ", (RateLimit(30, 60.0), RateLimit(1500, 3600.0))),
        ("3/0.5s", (RateLimit(3, 0.5),)),
        ("", ()),
    ],
)
def test_limit_strings_parse(text, expected):
    assert parse_limits(text) == expected


@pytest.mark.parametrize(
    ("text", "bad_part"),
    [
        ("30/60", "30/60"),
        ("30/60s,abc", "abc"),
        ("30/60s,", ""),
        ("0/60s", "0/60s"),
        ("5/0s", "5/0s"),
        ("30 per minute", "30 per minute"),
    ],
)
def test_bad_limit_strings_name_the_bad_part(text, bad_part):
    with pytest.raises(ValueError, match=re.escape(repr(bad_part))):
        parse_limits(text)


def test_a_bad_limit_string_is_refused_in_the_config(emulator):
    with pytest.raises(ValueError, match="1/minute"):
        emulator.configure(list_limits="1/minute")


_limits = st.lists(
    st.builds(
        RateLimit,
        st.integers(min_value=1, max_value=5),
        st.floats(min_value=0.5, max_value=20, allow_nan=False),
    ),
    min_size=1,
    max_size=3,
)
_gaps = st.lists(st.floats(min_value=0, max_value=3, allow_nan=False), max_size=60)


@given(limits=_limits, gaps=_gaps)
def test_the_limiter_never_admits_more_than_n_in_any_window(limits, gaps):
    limiter = SlidingWindowLimiter(limits)
    now, admitted = 0.0, []
    for gap in gaps:
        now += gap
        if limiter.try_acquire("key", now) is None:
            admitted.append(now)

    for limit in limits:
        for end in admitted:
            in_window = [t for t in admitted if t <= end < t + limit.window_s]
            assert len(in_window) <= limit.max_calls


@given(limits=_limits, gaps=_gaps)
def test_waiting_the_returned_time_always_gets_a_call_through(limits, gaps):
    limiter = SlidingWindowLimiter(limits)
    now = 0.0
    for gap in gaps:
        now += gap
        wait = limiter.try_acquire("key", now)
        if wait is not None:
            assert wait > 0
            now += wait + FLOAT_SLACK_S
            assert limiter.try_acquire("key", now) is None
