from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.pacing import BudgetExhausted, InProcessBudget
from shared.settings import RateLimit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def budget(clock: FakeClock, *limits: RateLimit) -> InProcessBudget:
    return InProcessBudget({"api": limits}, clock=clock, sleep=clock.sleep)


def test_calls_past_the_limit_wait_for_the_window() -> None:
    clock = FakeClock()
    pacer = budget(clock, RateLimit(3, 10))

    for _ in range(3):
        pacer.acquire("api").release()
    start = clock.now
    pacer.acquire("api")

    assert clock.now - start == pytest.approx(10)


def test_window_counts_from_when_the_answer_arrived() -> None:
    clock = FakeClock()
    pacer = budget(clock, RateLimit(1, 10))

    slot = pacer.acquire("api")
    clock.now += 4  # a slow call
    slot.release()
    pacer.acquire("api")

    assert clock.now == pytest.approx(1000 + 4 + 10)


def test_a_slot_given_back_unsent_does_not_count() -> None:
    clock = FakeClock()
    pacer = budget(clock, RateLimit(1, 10))

    pacer.acquire("api").release(sent=False)
    pacer.acquire("api")

    assert clock.now == 1000


def test_retry_after_blocks_every_caller() -> None:
    clock = FakeClock()
    pacer = budget(clock, RateLimit(100, 10))

    pacer.throttled("api", 7)
    pacer.acquire("api")

    assert clock.now == pytest.approx(1007)


def test_timeout_raises_instead_of_waiting_past_it() -> None:
    clock = FakeClock()
    pacer = budget(clock, RateLimit(1, 60))
    pacer.acquire("api").release()

    with pytest.raises(BudgetExhausted) as caught:
        pacer.acquire("api", timeout_s=5)

    assert caught.value.wait_s == pytest.approx(60)


@given(
    st.lists(st.floats(0, 3), min_size=1, max_size=60),
    st.integers(1, 5),
    st.floats(1, 20),
)
def test_no_window_ever_holds_more_calls_than_allowed(
    gaps: list[float], calls: int, window: float
) -> None:
    clock = FakeClock()
    pacer = budget(clock, RateLimit(calls, window), RateLimit(calls * 3, window * 4))
    answered = []

    for gap in gaps:
        clock.now += gap
        slot = pacer.acquire("api")
        answered.append(clock.now)
        slot.release()

    for limit in (RateLimit(calls, window), RateLimit(calls * 3, window * 4)):
        for i, start in enumerate(answered):
            inside = [t for t in answered[i:] if t < start + limit.window_s]
            assert len(inside) <= limit.calls


def test_a_call_in_flight_keeps_counting_until_it_answers() -> None:
    clock = FakeClock()
    pacer = budget(clock, RateLimit(1, 10))

    slow = pacer.acquire("api")
    clock.now += 25  # longer than the window, still no answer
    with pytest.raises(BudgetExhausted):
        pacer.acquire("api", timeout_s=5)
    slow.release()
    pacer.acquire("api")

    assert clock.now == pytest.approx(1000 + 25 + 10)
