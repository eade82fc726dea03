"""Running every scenario with our app and each baseline, and scoring it.

One `LocalStack` per scenario: each baseline runs on its emulator, then our
app on the stack's fresh storage. Before every run the tenant is reloaded,
the call log cleared and the emulator's rate limits forgotten. The table
lists our app first.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Protocol

from emulator import DefenderEmulator
from localdev.azurite import DEBUG_LOG_NAME
from localdev.stack import LOCAL_CLIENT_ID, LOCAL_TENANT_ID, LocalStack

from .baselines import BASELINES, run_baseline
from .ours import run_ours, stack_options
from .params import BenchParams
from .report import OURS, Row, targets_for
from .scenarios import (
    Scenario,
    Tenant,
    build_scenarios,
    prepare_tenant,
    tenant_rows,
)
from .scoring import Reported, score_run

__all__ = ["run_all"]

TOKEN_AUDIENCE = "https://api.securitycenter.microsoft.com"
TOKEN_ROLES = ["Ti.ReadWrite.All"]
# Longer than one call's latency (0.3 s), so that a call in flight shows up.
QUIET_S = 0.5
QUIET_POLL_S = 0.1
MAX_QUIET_WAIT_S = 30.0
_REQUEST_METHOD = re.compile(r"RequestMethod=([A-Z]+) ")


class _Run(Protocol):
    """What every strategy's run yields."""

    @property
    def reported(self) -> Reported: ...

    @property
    def wall_s(self) -> float: ...

    @property
    def capped(self) -> bool: ...


def run_all(
    params: BenchParams,
    workdir: Path,
    *,
    only: set[str] | None = None,
    baselines: bool = True,
) -> list[Row]:
    """Every scenario's rows (or those whose key is in `only`), ours first
    and then each baseline unless `baselines` is False."""
    rows: list[Row] = []
    for n, scenario in enumerate(build_scenarios(params)):
        if only is not None and scenario.key not in only:
            continue
        run_dir = workdir / f"{n + 1}-{scenario.key}-{scenario.workers}w"
        rows.extend(_run_scenario(scenario, params, run_dir, baselines))
    return rows


def _run_scenario(
    scenario: Scenario, params: BenchParams, run_dir: Path, with_baselines: bool
) -> list[Row]:
    """Baselines first, then our app, whose unfinished work (after a cap)
    could otherwise go on deleting and calling during a baseline's run."""
    rows = tenant_rows(scenario)
    # The host runs in a process of its own (`bench.workers`).
    options = dataclasses.replace(
        stack_options(params, scenario, run_dir), start_host=False
    )
    with LocalStack(options) as stack:
        assert stack.emulator is not None
        emulator = stack.emulator.emulator
        token, _ = stack.signer.issue(
            audience=TOKEN_AUDIENCE,
            tenant_id=LOCAL_TENANT_ID,
            app_id=LOCAL_CLIENT_ID,
            roles=TOKEN_ROLES,
        )
        baselines = []
        for baseline in BASELINES if with_baselines else ():
            tenant = prepare_tenant(emulator, rows, params)
            run = run_baseline(
                baseline, scenario, params, api_url=stack.emulator_url, token=token
            )
            baselines.append(_row(baseline.name, emulator, tenant, scenario, run))
        ours = _ours(stack, emulator, scenario, rows, params, run_dir)
        ours.extra["storage_requests"] = _storage_requests(stack)
    return [ours, *baselines]


def _storage_requests(stack: LocalStack) -> dict[str, int]:
    """Table requests Azurite logged so far, by method: our app's storage load
    (baselines never touch storage), plus the table's creation."""
    assert stack.azurite is not None
    log = stack.azurite.data_dir / DEBUG_LOG_NAME
    methods: Counter[str] = Counter()
    if not log.exists():
        return {}
    with log.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            found = _REQUEST_METHOD.search(line)
            if found:
                methods[found[1]] += 1
    return {"total": sum(methods.values()), **methods}


def _ours(
    stack: LocalStack,
    emulator: DefenderEmulator,
    scenario: Scenario,
    rows: list[dict[str, Any]],
    params: BenchParams,
    run_dir: Path,
) -> Row:
    tenant = prepare_tenant(emulator, rows, params)
    run = run_ours(scenario, params, run_dir)
    extra = {
        "observed_s": round(run.observed_s, 3),
        "last_created_s": round(run.last_created_s, 3),
        "jobs": run.jobs,
        "post_answers": run.post_answers,
        "post_retries": run.post_retries,
        "errors": run.errors,
    }
    return _row(OURS, emulator, tenant, scenario, run, extra)


def _row(
    strategy: str,
    emulator: DefenderEmulator,
    tenant: Tenant,
    scenario: Scenario,
    run: _Run,
    extra: dict[str, Any] | None = None,
) -> Row:
    _wait_until_quiet(emulator)
    after = {int(row["id"]) for row in emulator.indicators()}
    score = score_run(
        tenant,
        scenario.requested,
        after,
        emulator.calls(),
        run.reported,
        ended_at=time.time(),
    )
    targets = (
        targets_for(
            scenario.key, run.wall_s, scenario.ideal_s, scenario.ideal_calls, score
        )
        if strategy == OURS
        else ()
    )
    row = Row(
        key=scenario.key,
        scenario=scenario.label,
        strategy=strategy,
        workers=scenario.workers,
        wall_s=run.wall_s,
        ideal_s=scenario.ideal_s,
        ideal_calls=scenario.ideal_calls,
        capped=run.capped,
        score=score,
        extra={**(extra or {}), "reported": run.reported.counts()},
        targets=targets,
    )
    _progress(row)
    return row


def _wait_until_quiet(emulator: DefenderEmulator) -> None:
    """Wait until the emulator has logged no new call for `QUIET_S`.

    A caller that gave up on a slow answer leaves its request queued at the
    emulator; scoring after it has been served keeps its effect in this run
    instead of the next one.
    """
    deadline = time.monotonic() + MAX_QUIET_WAIT_S
    seen = len(emulator.calls())
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(QUIET_POLL_S)
        count = len(emulator.calls())
        if count != seen:
            seen, quiet_since = count, time.monotonic()
        elif time.monotonic() - quiet_since >= QUIET_S:
            return


def _progress(row: Row) -> None:
    s = row.score
    print(
        f"{row.scenario} | {row.strategy} | {row.workers}w: {row.wall_s:.1f}s"
        f"{' (capped)' if row.capped else ''}, {s.api_calls} calls, "
        f"{s.throttled} throttled, {s.deleted} deleted, {s.wrong} wrong",
        file=sys.stderr,
        flush=True,
    )
