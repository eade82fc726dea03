"""Mid-job actions: what a scenario does to the world while the app works.

Each waits for its `plan.Moment` (the job's first List call answered, or its
first BatchDelete calls), does its harm, and undoes it before returning, so
that a run cut short never leaves Azurite frozen or Key Vault down.
"""

from __future__ import annotations

import secrets
import threading
import time

from bench.scoring import API_BATCH_DELETE
from localdev.stack import LOCAL_CLIENT_ID, SECRET_NAME

from .lab import Lab
from .plan import AFTER_LISTING, START_TIMEOUT_S, Action, Moment

__all__ = [
    "entra_outage",
    "expire_after_listing",
    "kill_worker",
    "pause_storage",
    "restart_storage",
    "rotate_secret",
    "throttle_storm",
    "vault_outage",
]


def kill_worker(when: Moment) -> Action:
    """SIGKILL the one worker, then start another.

    The dead worker's leases are ended at once instead of after their 120 s,
    standing in for the wait a real restart would have.
    """

    def act(lab: Lab, stop: threading.Event) -> str:
        if not when.wait(lab, stop):
            return "the job ended before the kill"
        pid = lab.workers.kill_one()
        in_flight = lab.state.expire_claims()
        lab.workers.start(1)
        return f"worker {pid} killed {when}; {in_flight} claimed pieces released"

    return act


def pause_storage(when: Moment, seconds: float) -> Action:
    """Freeze Azurite (SIGSTOP) for `seconds`."""

    def act(lab: Lab, stop: threading.Event) -> str:
        if not when.wait(lab, stop):
            return "the job ended before the pause"
        lab.azurite.pause()
        try:
            time.sleep(seconds)
        finally:
            lab.azurite.resume()
        return f"Azurite paused {seconds:g}s {when}"

    return act


def restart_storage(in_flight: int, down_s: float) -> Action:
    """Stop Azurite (saving its data) as soon as the app's shared budget
    shows `in_flight` BatchDelete calls sent and not yet answered, and start it again on
    the same port `down_s` later: meanwhile connections are refused."""

    def act(lab: Lab, stop: threading.Event) -> str:
        def flying() -> bool:
            return lab.state.budget_in_flight(API_BATCH_DELETE) >= in_flight

        if not lab.wait_until(flying, stop, START_TIMEOUT_S):
            return "the job ended before the restart"
        try:
            lab.azurite.stop()
            time.sleep(down_s)
        finally:
            lab.azurite.start()
        return f"Azurite stopped with {in_flight}+ calls in flight, {down_s:g}s"

    return act


def throttle_storm(when: Moment, count: int, retry_after_s: int) -> Action:
    """Answer the next `count` calls 429 with `retry_after_s`."""

    def act(lab: Lab, stop: threading.Event) -> str:
        if not when.wait(lab, stop):
            return "the job ended before the storm"
        lab.emulator.set_faults(force_429=count, retry_after_s=retry_after_s)
        return f"{count} calls answered 429 {when}"

    return act


def expire_after_listing(seconds: float) -> Action:
    """Once the job's first List call is answered, move the emulator's clock
    `seconds` ahead, so indicators due to expire by then go at once: after
    the app listed them, before its BatchDelete calls arrive."""

    def act(lab: Lab, stop: threading.Event) -> str:
        if not AFTER_LISTING.wait(lab, stop):
            return "the job listed nothing"
        lab.shift_clock(seconds)
        sent = len(lab.calls(API_BATCH_DELETE))
        return f"clock moved {seconds:g}s ahead {AFTER_LISTING}, {sent} BatchDelete in"

    return act


def vault_outage(seconds: float) -> Action:
    """Key Vault answers 503 from the start for `seconds` (the workers are
    fresh processes, so none holds the secret yet)."""

    def act(lab: Lab, stop: threading.Event) -> str:
        lab.identity.set_vault_available(False)
        try:
            stop.wait(seconds)
        finally:
            lab.identity.set_vault_available(True)
        return f"Key Vault down for the first {seconds:g}s"

    return act


def entra_outage(when: Moment, seconds: float) -> Action:
    """The token endpoint answers 503 for `seconds`."""

    def act(lab: Lab, stop: threading.Event) -> str:
        if not when.wait(lab, stop):
            return "the job ended before the outage"
        lab.identity.entra.set_available(False)
        try:
            stop.wait(seconds)
        finally:
            lab.identity.entra.set_available(True)
        return f"Entra ID down {seconds:g}s {when}"

    return act


def rotate_secret(when: Moment) -> Action:
    """Rotate the client secret: a new version in Key Vault, and Entra ID
    accepting only the new one from then on."""

    def act(lab: Lab, stop: threading.Event) -> str:
        if not when.wait(lab, stop):
            return "the job ended before the rotation"
        new = secrets.token_urlsafe(24)
        lab.identity.set_secret(SECRET_NAME, new)
        lab.identity.set_app_secrets(LOCAL_CLIENT_ID, [new])
        return f"secret rotated {when}"

    return act
