"""Running the selected scenarios on one lab, each scored as it ends."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.scenarios import Tenant

from .drive import Drive, drive
from .lab import Lab
from .params import FaultParams
from .plan import Plan, Spec
from .scenarios import BASELINE
from .tally import Tally, tally
from .tenants import base_tenant

__all__ = ["Result", "run_suite"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

ACTION_JOIN_S = 30.0
JOIN_POLL_S = 0.2
CALL_LOG = "calls.json"
SYNC_WAIT = "SYNC_WAIT_SECONDS"
NO_WAIT = "0"


@dataclass(frozen=True)
class Result:
    """One scenario's row: its numbers and what happened on the way."""

    name: str
    description: str
    tally: Tally
    wall_s: float
    capped: bool
    notes: dict[str, Any] = field(default_factory=dict)


def run_suite(params: FaultParams, specs: list[Spec], workdir: Path) -> list[Result]:
    """Run `specs` in order on one fresh lab; the first must be the baseline,
    whose List calls are what a clean run needs."""
    if not specs or specs[0].name != BASELINE:
        raise ValueError("the baseline must run first")
    rows, ids = base_tenant(params.tenant_size, params.requested)
    lab = Lab(params, workdir)
    results: list[Result] = []
    try:
        lab.start()
        clean_lists: int | None = None
        for spec in specs:
            result = _run_one(lab, spec, spec.build(rows, ids), workdir, clean_lists)
            if spec.name == BASELINE:
                clean_lists = result.tally.detail["list_calls"]
            results.append(result)
            _progress(result)
    finally:
        lab.stop()
    return results


def _run_one(
    lab: Lab, spec: Spec, plan: Plan, workdir: Path, clean_lists: int | None
) -> Result:
    log_dir = workdir / spec.name
    shutil.rmtree(log_dir, ignore_errors=True)
    lab.workers.set_log_dir(log_dir)
    cap_before = lab.state.daily_cap_used()
    workers_before = (lab.workers.started, lab.workers.crashed)
    with lab.app_settings(_settings(plan)):
        lab.workers.start(plan.workers)
        tenant = lab.reset(plan.rows)
        _configure(lab, plan)
        stop = threading.Event()
        note: list[str] = []
        actor = _start_action(lab, plan, stop, note)
        try:
            run = _interruptible(lambda: drive(lab, spec.name, plan, log_dir))
        finally:
            stop.set()
            if actor is not None:
                actor.join(ACTION_JOIN_S)
            lab.workers.stop_all()
            lab.azurite.resume()
    result = _score(lab, workdir, spec, plan, tenant, run, clean_lists, note)
    result.notes.update(
        daily_cap_reserved=lab.state.daily_cap_used() - cap_before,
        budget_left_in_flight=lab.state.budget_in_flight(),
        workers_started=lab.workers.started - workers_before[0],
        workers_crashed=lab.workers.crashed - workers_before[1],
    )
    return result


def _settings(plan: Plan) -> dict[str, str]:
    """The plan's app settings; a lone request is answered 202 at once, so
    that the workers rather than the POST do its work (as in `bench.ours`)."""
    lone = len(plan.requests) == 1 and not plan.idempotency_key
    return {**({SYNC_WAIT: NO_WAIT} if lone else {}), **plan.settings}


def _interruptible(work: Callable[[], T]) -> T:
    """Run `work` in a daemon thread, so that Ctrl-C reaches this thread at
    once instead of after the callers' threads have ended."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # re-raised in the calling thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="drive", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(JOIN_POLL_S)
    if failure:
        raise failure[0]
    return outcome[0]


def _configure(lab: Lab, plan: Plan) -> None:
    if plan.emulator:
        lab.emulator.configure(**plan.emulator)
    lab.emulator.set_faults(seed=lab.params.fault_seed, **plan.faults)
    if plan.token_lifetime_s is not None:
        lab.set_token_lifetime(plan.token_lifetime_s)


def _start_action(
    lab: Lab, plan: Plan, stop: threading.Event, note: list[str]
) -> threading.Thread | None:
    action = plan.action
    if action is None:
        return None

    def act() -> None:
        try:
            note.append(action(lab, stop))
        except Exception as exc:  # reported in the row, never hidden
            logger.exception("the scenario's action failed")
            note.append(f"action failed: {type(exc).__name__}: {exc}")

    thread = threading.Thread(target=act, name="fault-action", daemon=True)
    thread.start()
    return thread


def _score(
    lab: Lab,
    workdir: Path,
    spec: Spec,
    plan: Plan,
    tenant: Tenant,
    run: Drive,
    clean_lists: int | None,
    note: list[str],
) -> Result:
    after = {int(row["id"]) for row in lab.emulator.indicators()}
    calls = lab.emulator.calls()
    _keep_call_log(workdir / spec.name, calls)
    result = tally(
        plan,
        tenant,
        after,
        calls,
        run.documents,
        clean_lists=clean_lists,
        ended_at=time.time(),
    )
    notes: dict[str, Any] = {
        "jobs": _job_statuses(run.documents),
        "unfinished_jobs": run.unfinished_jobs,
        "leftover_pieces": lab.state.discard_unfinished(),
        "http_errors": run.sent.errors,
    }
    if note:
        notes["action"] = note[0]
    if run.sent.job_ids:
        notes["job_ids_answered"] = len(run.sent.job_ids)
    sent = run.sent
    return Result(spec.name, spec.description, result, sent.wall_s, sent.capped, notes)


def _keep_call_log(log_dir: Path, calls: list[dict[str, Any]]) -> None:
    """The emulator's call log beside the workers' logs, without the IDs."""
    brief = [{k: v for k, v in c.items() if k != "indicatorIds"} for c in calls]
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / CALL_LOG).write_text(json.dumps(brief, indent=1) + "\n")


def _job_statuses(documents: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for document in documents:
        status = str(document["runtimeStatus"])
        counts[status] = counts.get(status, 0) + 1
    return counts


def _progress(result: Result) -> None:
    t = result.tally
    print(
        f"{result.name}: {result.wall_s:.1f}s{' (capped)' if result.capped else ''}, "
        f"requested {t.requested}, deleted {t.deleted}, lost {t.lost}, "
        f"misreported {t.misreported}, extra calls {t.extra_calls}, "
        f"throttled {t.throttled}",
        file=sys.stderr,
        flush=True,
    )
