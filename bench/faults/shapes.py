"""Scenarios whose tenant or requests have a shape: IDs already gone, fenced
off by device group, expiring mid-job, spread over two List pages, or sent
twice. Each function returns a plan builder (see `plan.Spec`)."""

from __future__ import annotations

import math

from emulator.config import DEFAULT_DEVICE_GROUPS
from localdev.stack import LOCAL_CLIENT_ID

from . import actions
from .plan import Builder, Plan, after_batches
from .tenants import Row, every_nth, expiring, in_group, seed_rows, split, without

__all__ = [
    "already_gone",
    "expiring_mid_job",
    "fenced",
    "racing_copies",
    "repeated",
    "second_job",
]

# About 1% of the requested IDs: every 100th.
ONE_PERCENT = 100
SMALL_JOB_IDS = 500
# The device group the app is not exposed to, and how many of its indicators
# a request names.
FENCED_GROUP = "Kiosks"
FENCED_IDS = 30
# Indicators due to expire this far ahead (nearer than any seed expiry) are
# made to expire mid-job by moving the emulator's clock past them.
EXPIRY_AHEAD_S = 300.0
EXPIRY_MARGIN_S = 10.0
EXPIRY_LATENCY_S = 0.3
# Defender's tenant cap, and the most rows one List page holds.
FULL_TENANT = 15_000
LIST_PAGE = 10_000
FIRST_JOB_IDS = 3_000
SECOND_JOB_IDS = 1_500
SECOND_JOB_STRIDE = 3
SECOND_JOB_AFTER_BATCHES = 1
# Real Defender spreads 30 calls over a minute while a List takes seconds;
# the scaled 30/3s lets a job go out in one burst. This pace restores the
# real proportion for the scenario that depends on it.
SLOW_PACE = "2/1s,1500/180s"
# A request sent again (under a new key) after its first IDs were deleted.
REPEAT_DONE = 1_000


def already_gone(mode: str) -> Builder:
    """1% of the IDs gone before the request, sent as jobs of 500 (which do
    not list first) and finished by the HTTP polls alone."""

    def build(rows: list[Row], ids: tuple[int, ...]) -> Plan:
        gone = set(every_nth(ids, ONE_PERCENT))
        return Plan(
            rows=without(rows, gone),
            requests=split(ids, SMALL_JOB_IDS),
            workers=0,
            emulator={"partial_failure": mode},
        )

    return build


def fenced(mode: str) -> Builder:
    """`FENCED_IDS` of the request in a device group the app cannot reach."""

    def build(rows: list[Row], ids: tuple[int, ...]) -> Plan:
        fence = in_group(rows, FENCED_GROUP)
        chosen = sorted(fence)[:FENCED_IDS]
        allowed = [i for i in ids if i not in fence][: len(ids) - len(chosen)]
        groups = set(DEFAULT_DEVICE_GROUPS.values())
        groups.discard(DEFAULT_DEVICE_GROUPS[FENCED_GROUP])
        return Plan(
            rows=rows,
            requests=(tuple(sorted([*allowed, *chosen])),),
            emulator={
                "partial_failure": mode,
                "exposure": {LOCAL_CLIENT_ID: sorted(groups)},
            },
        )

    return build


def expiring_mid_job(mode: str) -> Builder:
    """1% of the request expires after the app's listing, before its calls."""

    def build(rows: list[Row], ids: tuple[int, ...]) -> Plan:
        soon = every_nth(ids, ONE_PERCENT)
        return Plan(
            rows=expiring(rows, soon, EXPIRY_AHEAD_S, EXPIRY_AHEAD_S),
            requests=(ids,),
            emulator={"partial_failure": mode},
            faults={"latency_s": EXPIRY_LATENCY_S},
            action=actions.expire_after_listing(EXPIRY_AHEAD_S + EXPIRY_MARGIN_S),
        )

    return build


def second_job(rows: list[Row], ids: tuple[int, ...]) -> Plan:
    """A full tenant: a job for the first List page, then one for the second
    arriving while the first is being deleted, by two workers at a real pace."""
    full = seed_rows(FULL_TENANT)
    first = tuple(int(row["id"]) for row in full[:FIRST_JOB_IDS])
    # Every third indicator of the second page, ordered so that each batch
    # spans the whole range: a hole in a listing then costs each batch some
    # IDs but never all of them.
    page = [int(row["id"]) for row in full[LIST_PAGE::SECOND_JOB_STRIDE]]
    page = page[:SECOND_JOB_IDS]
    batches = math.ceil(len(page) / SMALL_JOB_IDS)
    spread = sorted(enumerate(page), key=lambda pair: (pair[0] % batches, pair[1]))
    return Plan(
        rows=full,
        requests=(first, tuple(i for _, i in spread)),
        follow_up=after_batches(SECOND_JOB_AFTER_BATCHES),
        workers=2,
        emulator={"batch_delete_limits": SLOW_PACE},
        settings={"BATCH_DELETE_RATE_LIMITS": SLOW_PACE},
    )


def repeated(rows: list[Row], ids: tuple[int, ...]) -> Plan:
    """The request again, after its first `REPEAT_DONE` IDs were deleted."""
    return Plan(rows=without(rows, set(ids[:REPEAT_DONE])), requests=(ids,))


def racing_copies(copies: int, key: str) -> Builder:
    """The request sent `copies` times at once under one Idempotency-Key."""

    def build(rows: list[Row], ids: tuple[int, ...]) -> Plan:
        return Plan(
            rows=rows,
            requests=(ids,),
            workers=0,
            idempotency_key=key,
            copies=copies,
        )

    return build
