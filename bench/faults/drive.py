"""Sending a scenario's requests as callers do, and reading back every report.

Requests are sent by `bench.ours.run_ours`, the benchmark's own callers.
Racing identical requests reuse its `bench.app_client.AppCaller`, one per
copy, all under the same ``Idempotency-Key``, each polling its status URL as
Logic Apps would. Either way the reports are then read again from the app:
the job list (which does no work) gives every job the scenario made, and
each finished job's status URL its report.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import requests

from bench.app_client import FINISHED, KEY_HEADER, ROUTE, AppCaller
from bench.callers import Deadline, run_callers
from bench.ours import run_ours
from bench.workers import HostProcess

from .lab import Lab, bench_scenario
from .plan import Plan

__all__ = ["Drive", "drive"]

logger = logging.getLogger(__name__)

HTTP_TIMEOUT_S = (5.0, 120.0)
LISTED_JOBS = 500


@dataclass
class Sent:
    """What the callers saw: when they began, how long, whether cut off."""

    started_at: float
    wall_s: float
    capped: bool
    job_ids: set[str] = field(default_factory=set)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def ended_at(self) -> float:
        return self.started_at + self.wall_s


@dataclass
class Drive:
    """What the callers saw and what the app reported afterwards."""

    sent: Sent
    documents: list[dict[str, Any]]
    unfinished_jobs: int


def drive(lab: Lab, name: str, plan: Plan, log_dir: Path) -> Drive:
    """Send the plan's requests, wait for every job, read their reports."""
    since = _iso(time.time())
    if plan.idempotency_key:
        sent = _race(lab, plan)
    elif plan.follow_up is not None:
        sent = _staggered(lab, name, plan, log_dir)
    else:
        sent = _send(lab, name, plan.requests, log_dir)
    documents, unfinished = _reports(lab, since)
    return Drive(sent, documents, unfinished)


def _send(lab: Lab, name: str, batch: Sequence[tuple[int, ...]], log_dir: Path) -> Sent:
    """`batch` of requests at once through the benchmark's callers."""
    host = HostProcess(lab.base_url, lab.function_key)
    run = run_ours(bench_scenario(name, tuple(batch)), lab.bench, log_dir, host)
    return Sent(run.started_at, run.wall_s, run.capped, errors=dict(run.errors))


def _staggered(lab: Lab, name: str, plan: Plan, log_dir: Path) -> Sent:
    """The first request now, the others at the plan's follow-up moment."""
    assert plan.follow_up is not None
    moment = plan.follow_up
    first, *rest = plan.requests
    later: list[Sent] = []
    stop = threading.Event()

    def follow() -> None:
        if moment.wait(lab, stop):
            later.append(_send(lab, f"{name}-later", rest, log_dir))

    thread = threading.Thread(target=follow, name="follow-up", daemon=True)
    thread.start()
    try:
        sent = _send(lab, name, [first], log_dir)
    finally:
        stop.set()
        thread.join()
    if not later:
        logger.warning("the follow-up requests of %s were never sent", name)
        return replace(sent, errors={**sent.errors, "follow-up not sent": 1})
    return _together(sent, later[0])


def _together(first: Sent, second: Sent) -> Sent:
    ended = max(first.ended_at, second.ended_at)
    errors = {**first.errors}
    for key, count in second.errors.items():
        errors[key] = errors.get(key, 0) + count
    return Sent(
        started_at=first.started_at,
        wall_s=ended - first.started_at,
        capped=first.capped or second.capped,
        errors=errors,
    )


def _race(lab: Lab, plan: Plan) -> Sent:
    """POST the one request `copies` times at once under one key."""
    (ids,) = plan.requests
    assert plan.idempotency_key is not None
    deadline = Deadline(lab.params.cap_s)
    caller = AppCaller(lab.base_url, lab.function_key, deadline, watch_list=False)
    task = partial(caller.delete, list(ids), plan.idempotency_key)
    run = run_callers([task] * plan.copies, [0.0] * plan.copies)
    seen = {str(a.document["id"]) for a in run.results if a.document is not None}
    return Sent(run.started_at, run.wall_s, deadline.reached, job_ids=seen)


def _reports(lab: Lab, since: str) -> tuple[list[dict[str, Any]], int]:
    """Every finished job's status document made since `since`, and how many
    jobs were not finished."""
    url = lab.base_url + ROUTE
    with requests.Session() as session:
        session.headers[KEY_HEADER] = lab.function_key
        query = {"since": since, "top": str(LISTED_JOBS)}
        listing = session.get(url, params=query, timeout=HTTP_TIMEOUT_S)
        listing.raise_for_status()
        jobs = listing.json()["jobs"]
        finished = [job for job in jobs if job["runtimeStatus"] in FINISHED]
        documents = []
        for job in finished:
            response = session.get(f"{url}/{job['id']}", timeout=HTTP_TIMEOUT_S)
            response.raise_for_status()
            documents.append(response.json())
    return documents, len(jobs) - len(finished)


def _iso(epoch_s: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch_s, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
