"""How the worker packs waiting pieces into batches."""

from __future__ import annotations

from shared.jobs import MAX_PIECES_PER_PACK, Piece
from shared.worker import _packs

from .pieces import pending_piece


def piece(n: int, ids: int) -> Piece:
    return pending_piece(n, ids, stamped_ms=n)


def test_small_pieces_fill_batches_of_500_in_arrival_order() -> None:
    pieces = [piece(n, 5) for n in range(250)]

    packs = _packs(pieces, most=4)

    assert [sum(len(p.remaining) for p in pack) for pack in packs] == [500, 500, 250]
    assert [p for pack in packs for p in pack] == pieces


def test_a_pack_holds_no_more_pieces_than_one_transaction_takes() -> None:
    pieces = [piece(n, 1) for n in range(250)]

    packs = _packs(pieces, most=4)

    assert [len(pack) for pack in packs] == [MAX_PIECES_PER_PACK, 100, 50]
    assert MAX_PIECES_PER_PACK == 100


def test_a_piece_that_does_not_fit_waits_for_a_later_pack() -> None:
    pieces = [piece(0, 300), piece(1, 300), piece(2, 200)]

    packs = _packs(pieces, most=4)

    assert [[p.job_id for p in pack] for pack in packs] == [
        ["job0", "job2"],
        ["job1"],
    ]
