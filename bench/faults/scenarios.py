"""The fault scenarios, in the order they run; `baseline` always runs first.

Each builds its plan from the base tenant (a prefix of the seed) and the IDs
a plain request names (three in four of the tenant's rows). Percentages are
of the requested IDs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import actions, shapes
from .plan import AFTER_LISTING, Builder, Plan, Spec, after_batches
from .tenants import Row

__all__ = ["BASELINE", "SPECS", "select"]

BASELINE = "baseline"
# Mid-job: two BatchDelete calls were answered.
MID_JOB = after_batches(2)
FAULT_RATE = 0.2
STORM_429S = 20
STORM_RETRY_AFTER_S = 1
SLOW_CALL_S = 2.0
SHORT_TOKEN_S = 2
# Longer than a short token lives, so tokens expire while calls wait.
LONG_RETRY_AFTER_S = 3
TOKEN_429S = 4
STORAGE_PAUSE_S = 10.0
# Calls slow enough that storage goes down between a call's send and answer.
RESTART_CALL_S = 2.0
RESTART_IN_FLIGHT = 2
STORAGE_DOWN_S = 6.0
VAULT_OUTAGE_S = 8.0
ENTRA_OUTAGE_S = 6.0
RACERS = 2
RACE_KEY = "bench-faults-race"


def _single(**options: Any) -> Builder:
    """A plan sending the plain request once, with `options`."""

    def build(rows: list[Row], ids: tuple[int, ...]) -> Plan:
        return Plan(rows=rows, requests=(ids,), **options)

    return build


def _after_commit(after: bool) -> str:
    return "after doing the work" if after else "before doing anything"


def _deletes(mode: str) -> str:
    return "nothing" if mode == "none" else "the IDs it could"


def _five_hundreds(after: bool) -> Spec:
    faults = {"error_rate": FAULT_RATE, "error_after_commit": after}
    name = "5xx-20%" + ("-after-commit" if after else "")
    text = f"20% of calls answer 500/503 {_after_commit(after)}"
    return Spec(name, text, _single(faults=faults))


def _drops(after: bool) -> Spec:
    faults = {"drop_rate": FAULT_RATE, "error_after_commit": after}
    name = "drops-20%" + ("-after-commit" if after else "")
    text = f"20% of connections dropped {_after_commit(after)}"
    return Spec(name, text, _single(faults=faults))


def _partial_failures(mode: str) -> list[Spec]:
    deletes = f"a failed call deletes {_deletes(mode)}"
    return [
        Spec(
            f"404-{mode}",
            f"1% already gone; jobs of {shapes.SMALL_JOB_IDS} (no listing "
            f"first) finished by HTTP polls; {deletes}",
            shapes.already_gone(mode),
        ),
        Spec(
            f"403-{mode}",
            f"{shapes.FENCED_IDS} requested IDs in a device group the app is "
            f"not exposed to; {deletes}",
            shapes.fenced(mode),
        ),
        Spec(
            f"expiring-{mode}",
            f"1% expire between the app's listing and its calls; {deletes}",
            shapes.expiring_mid_job(mode),
        ),
    ]


SPECS: tuple[Spec, ...] = (
    Spec(BASELINE, "no fault; one worker", _single()),
    Spec(
        "worker-sigkill",
        f"the worker SIGKILLed {MID_JOB}; another starts",
        _single(action=actions.kill_worker(MID_JOB)),
    ),
    Spec(
        "azurite-pause",
        f"Azurite frozen {STORAGE_PAUSE_S:g}s {MID_JOB}",
        _single(action=actions.pause_storage(MID_JOB, STORAGE_PAUSE_S)),
    ),
    Spec(
        "azurite-restart",
        f"Azurite stopped while BatchDelete calls ({RESTART_CALL_S:g}s each) "
        f"are out, started {STORAGE_DOWN_S:g}s later",
        _single(
            faults={"latency_s": RESTART_CALL_S},
            action=actions.restart_storage(RESTART_IN_FLIGHT, STORAGE_DOWN_S),
        ),
    ),
    Spec(
        "vault-down",
        f"Key Vault 503 for the first {VAULT_OUTAGE_S:g}s; fresh worker",
        _single(action=actions.vault_outage(VAULT_OUTAGE_S)),
    ),
    Spec(
        "entra-down",
        f"token endpoint 503 for {ENTRA_OUTAGE_S:g}s {AFTER_LISTING}; "
        f"{SHORT_TOKEN_S}s tokens",
        _single(
            token_lifetime_s=SHORT_TOKEN_S,
            action=actions.entra_outage(AFTER_LISTING, ENTRA_OUTAGE_S),
        ),
    ),
    Spec(
        "token-expiry",
        f"{SHORT_TOKEN_S}s tokens; the first {TOKEN_429S} calls answer 429 "
        f"with Retry-After {LONG_RETRY_AFTER_S}s",
        _single(
            token_lifetime_s=SHORT_TOKEN_S,
            faults={"force_429": TOKEN_429S, "retry_after_s": LONG_RETRY_AFTER_S},
        ),
    ),
    Spec(
        "secret-rotated",
        f"secret rotated {AFTER_LISTING}, the old one refused; {SHORT_TOKEN_S}s tokens",
        _single(
            token_lifetime_s=SHORT_TOKEN_S,
            action=actions.rotate_secret(AFTER_LISTING),
        ),
    ),
    Spec(
        "429-storm",
        f"the next {STORM_429S} calls after the first BatchDelete answer 429, "
        f"Retry-After {STORM_RETRY_AFTER_S}s",
        _single(
            action=actions.throttle_storm(
                after_batches(1), STORM_429S, STORM_RETRY_AFTER_S
            )
        ),
    ),
    _five_hundreds(after=False),
    _five_hundreds(after=True),
    Spec(
        "latency-2s",
        f"every call takes {SLOW_CALL_S:g}s",
        _single(faults={"latency_s": SLOW_CALL_S}),
    ),
    _drops(after=False),
    _drops(after=True),
    *_partial_failures("none"),
    *_partial_failures("found"),
    Spec(
        "second-job",
        f"{shapes.FULL_TENANT:,} indicators (two List pages); a job for the "
        f"second page arrives once the first one's BatchDelete calls began; "
        f"two workers; {shapes.SLOW_PACE} BatchDelete calls",
        shapes.second_job,
    ),
    Spec(
        "repeat-request",
        f"the request sent again after its first {shapes.REPEAT_DONE:,} IDs "
        "were deleted",
        shapes.repeated,
    ),
    Spec(
        "idempotent-race",
        f"{RACERS} identical POSTs with one Idempotency-Key at once",
        shapes.racing_copies(RACERS, RACE_KEY),
    ),
)


def select(names: Sequence[str]) -> list[Spec]:
    """The baseline and the named scenarios (every one when none is named);
    raises ValueError for an unknown name."""
    known = {spec.name: spec for spec in SPECS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; known: {sorted(known)}")
    wanted = set(names) | {BASELINE}
    return [spec for spec in SPECS if not names or spec.name in wanted]
