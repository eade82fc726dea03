"""Our app, driven as its callers drive it, with its work done by workers.

The functions host and the workers each run in a process of their own
(`bench.workers`).

Each scenario gets a new `LocalStack` with empty Azurite storage, so no job
or rate budget from an earlier run is carried over. Timer functions are
disabled, so the only ones working are the worker processes (and, in
scenario c, the HTTP requests themselves).

The workers (`bench.workers`) are ready before the first request and are
stopped once every job has finished.

Scenarios a and b send one POST with ``SYNC_WAIT_SECONDS=0`` (answered 202)
and watch the job in the job list, which does no work, then read the status
URL once the job is finished; polling the status URL itself would make the
host work on the job and add an unplanned worker. In scenario c every caller
POSTs with the default 20 s wait and, after a 202, polls its status URL as
Logic Apps does (`bench.app_client`).

`wall_s` runs from the first POST to the last job's completion as the app
recorded it (``lastUpdatedTime``); `observed_s` to when the bench saw it, and
`last_created_s` to when the app stored the last job.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from localdev.stack import REPO_ROOT, StackOptions

from .app_client import AppCaller, JobAnswer
from .callers import START_LEAD_S, Deadline, run_callers
from .params import BenchParams
from .scenarios import Scenario
from .scoring import Reported
from .workers import HostProcess, host_process, worker_processes

__all__ = ["OursRun", "run_ours", "stack_options"]

NO_WAIT = "0"
# The app's safety caps on request size and daily deletions are not what the
# bench measures: they are set so that each scenario's requests are admitted.
DAILY_DELETES_CAP = 1_000_000


def stack_options(
    params: BenchParams, scenario: Scenario, workdir: Path
) -> StackOptions:
    """A fresh stack at the scaled limits, with the timer switched off."""
    largest = max(len(request) for request in scenario.requests)
    settings = {
        "BATCH_LINGER_SECONDS": f"{params.linger_s:g}",
        "BATCH_MAX_LINGER_SECONDS": f"{params.max_linger_s:g}",
        "MAX_IDS_PER_REQUEST": str(largest),
        "MAX_DELETES_PER_DAY": str(DAILY_DELETES_CAP),
        **{f"AzureWebJobs.{name}.Disabled": "true" for name in _timer_functions()},
    }
    if len(scenario.requests) == 1:
        settings["SYNC_WAIT_SECONDS"] = NO_WAIT
    # Not seeded: every run loads its own tenant (`bench.scenarios`).
    return StackOptions(
        workdir=workdir,
        seed=False,
        keep_storage=False,
        batch_delete_limits=params.batch_delete_limits,
        list_limits=params.list_limits,
        settings=settings,
    )


def _timer_functions() -> list[str]:
    """The app's timer-triggered functions, read from their function.json."""
    names = []
    for config in sorted(REPO_ROOT.glob("*/function.json")):
        bindings = json.loads(config.read_text()).get("bindings", [])
        if any(b.get("type") == "timerTrigger" for b in bindings):
            names.append(config.parent.name)
    return names


@dataclass(frozen=True)
class OursRun:
    """What our app reported and how long it took."""

    reported: Reported
    started_at: float
    wall_s: float
    observed_s: float
    last_created_s: float
    capped: bool
    jobs: dict[str, int] = field(default_factory=dict)
    post_answers: dict[str, int] = field(default_factory=dict)
    post_retries: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


def run_ours(
    scenario: Scenario,
    params: BenchParams,
    log_dir: Path,
    host: HostProcess | None = None,
) -> OursRun:
    """Start the workers (and, unless `host` is given, a host) on the running
    stack's settings, send the scenario's requests, wait for every job."""
    with (
        host_process(log_dir) if host is None else nullcontext(host) as host,
        worker_processes(scenario.workers, params.ours_cap_s, log_dir),
    ):
        deadline = Deadline(params.ours_cap_s + START_LEAD_S)
        caller = AppCaller(
            host.base_url,
            host.function_key,
            deadline,
            watch_list=len(scenario.requests) == 1,
        )
        run_id = uuid.uuid4().hex
        tasks = [
            partial(caller.delete, list(ids), f"bench-{run_id}-{n}")
            for n, ids in enumerate(scenario.requests)
        ]
        run = run_callers(tasks, scenario.offsets())
    return _summarise(run.results, run.started_at, run.wall_s, deadline.reached)


def _summarise(
    answers: list[JobAnswer], started_at: float, elapsed_s: float, capped: bool
) -> OursRun:
    """Merge the callers' reports; an unfinished run counts its full time."""
    reported = Reported()
    documents = [a.document for a in answers if a.document is not None]
    for document in documents:
        _add_output(reported, document["output"] or {})
    errors = Counter(a.error for a in answers if a.error is not None)
    complete = not capped and not errors

    def latest(times: list[float]) -> float:
        return max(times) - started_at if complete else elapsed_s

    return OursRun(
        reported=reported,
        started_at=started_at,
        wall_s=latest([_epoch(d["lastUpdatedTime"]) for d in documents]),
        observed_s=latest([a.seen_at for a in answers]),
        last_created_s=max(
            (_epoch(d["createdTime"]) - started_at for d in documents), default=0.0
        ),
        capped=capped,
        jobs=dict(Counter(d["runtimeStatus"] for d in documents)),
        post_answers=dict(Counter(a.posted for a in answers)),
        post_retries=dict(Counter(r for a in answers for r in a.retried)),
        errors=dict(errors),
    )


def _add_output(reported: Reported, output: dict[str, Any]) -> None:
    reported.deleted.update(int(i) for i in output.get("deleted", []))
    reported.not_found.update(int(i) for i in output.get("notFound", []))
    for failure in [*output.get("failed", []), *output.get("forbidden", [])]:
        reported.failed.add(int(failure["id"]))


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
