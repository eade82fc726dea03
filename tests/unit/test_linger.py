"""How long the worker holds a partial batch for more pieces to join it."""

from __future__ import annotations

from typing import Any

import pytest

from shared.jobs import Piece
from shared.worker import Worker

from .pieces import pending_piece

LINGER_S = 1.0
MAX_LINGER_S = 10.0
START = 1_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def piece(n: int, ids: int = 5, *, stamped: float = START) -> Piece:
    return pending_piece(n, ids, stamped_ms=int(stamped * 1000))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def worker(clock: Clock) -> Worker:
    # Only the timing is under test: nothing is stored or sent.
    unused: Any = None
    return Worker(
        unused,
        unused,
        unused,
        linger_s=LINGER_S,
        max_linger_s=MAX_LINGER_S,
        clock=clock,
    )


def linger(worker: Worker, waiting: list[Piece]) -> float:
    size = sum(len(p.remaining) for p in waiting)
    return worker._linger_left(waiting, size, waiting)


def test_a_full_batch_goes_at_once(worker: Worker) -> None:
    assert linger(worker, [piece(n, 100) for n in range(5)]) == 0.0


def test_a_lone_request_waits_only_the_quiet_period(
    worker: Worker, clock: Clock
) -> None:
    waiting = [piece(0)]

    assert linger(worker, waiting) == pytest.approx(LINGER_S)
    clock.now += LINGER_S
    assert linger(worker, waiting) == 0.0


def test_a_steady_stream_is_held_until_the_oldest_has_waited_long_enough(
    worker: Worker, clock: Clock
) -> None:
    waiting: list[Piece] = []
    for n in range(int(MAX_LINGER_S / 0.5)):
        waiting.append(piece(n, stamped=clock.now))
        assert linger(worker, waiting) > 0
        clock.now += 0.5
    waiting.append(piece(99, stamped=clock.now))

    assert linger(worker, waiting) == 0.0


def test_lingering_counts_from_when_a_piece_was_first_seen(
    worker: Worker, clock: Clock
) -> None:
    # Stamped 3 s before it could be seen (a slow commit under load): by its
    # stamp it would already look quiet, but it has only just arrived.
    late = piece(0, stamped=clock.now - 3.0)

    assert linger(worker, [late]) == pytest.approx(LINGER_S)


def test_a_burst_with_pauses_is_not_taken_for_its_end(
    worker: Worker, clock: Clock
) -> None:
    # Requests land in bursts 0.8 s apart: a pause of LINGER_S alone would
    # send after each burst, but the stream's own pauses show it goes on.
    waiting = []
    for n in range(3):
        waiting.append(piece(n))
        linger(worker, waiting)
        clock.now += 0.8
    clock.now += LINGER_S - 0.8

    assert linger(worker, waiting) == pytest.approx(0.6)
