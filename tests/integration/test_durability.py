"""Crashes, outages and many instances, against the real local stack.

Each test runs worker processes (``python -m localdev.worker``) against the
session's Azurite and Defender emulator, as separate function instances run
in Azure, and judges the end state by the emulator's call log: every requested
ID ends deleted or reported, and an ID is reported deleted only when a
BatchDelete holding it was answered 204.

A dead worker's pieces stay claimed for `shared.worker.LEASE_S` (two minutes)
and no setting shortens that, so takeover tests first check that the lease
holds, then move it into the past, as two minutes of waiting would.

The session host's timer, which would drain pending work every minute as a
fifth worker with other settings, is stopped while these tests run, and the
shared rate budgets start empty: a killed worker's reservations count as in
flight for minutes.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

import pytest
from azure.data.tables import TableClient
from azure.functions import HttpResponse

from emulator import DefenderEmulator, Faults, parse_limits
from localdev.stack import LOCAL_TENANT_ID, LocalStack
from shared.defender import API_BATCH_DELETE
from shared.errors import DefenderError
from shared.jobs import Job, JobStatus, JobStore, JobUnconfirmed
from shared.pacing import BudgetExhausted, InProcessBudget
from shared.settings import parse_rate_limits
from shared.status import status_document
from shared.storage import STATE_TABLE
from shared.worker import LEASE_S, Worker

from .helpers import batch_calls, body_of, get, post

if TYPE_CHECKING:
    from ..conftest import StartWorker, StoredPieces, WorkerProcess

pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("host_timers_stopped", "leaves_no_work"),
]

# About one BatchDelete every half second, so a job of thousands of IDs takes
# long enough to crash or starve in the middle of it.
PACED_LIMITS = "2/1s,1500/120s"
LATENCY_S = 0.3
# IDs no tenant holds: they must end reported notFound.
UNKNOWN_BASE = 99_000_000
UNKNOWN_IDS = [UNKNOWN_BASE + n for n in range(1, 6)]
WORKER_EXIT_S = 90.0
POLL_S = 0.02
# Longer than one storage read timeout (15 s in shared.storage).
STORAGE_OUTAGE_S = 17.0


# -- the emulated tenant and its call log --------------------------------------


def defender(stack: LocalStack) -> DefenderEmulator:
    assert stack.emulator is not None
    return stack.emulator.emulator


def load_tenant(
    stack: LocalStack,
    seed: list[dict[str, Any]],
    size: int,
    *,
    partial_failure: str = "none",
    latency_s: float = 0.0,
) -> list[dict[str, Any]]:
    """A tenant of the first `size` seed indicators, an empty call log and
    fresh rate limits."""
    emulator = defender(stack)
    emulator.configure(
        partial_failure=partial_failure,
        exposure={},
        faults=Faults(latency_s=latency_s),
    )
    rows = seed[:size]
    emulator.load(rows)
    emulator.reset_limits()
    emulator.clear_calls()
    return rows


def paced(stack: LocalStack, limits: str = PACED_LIMITS) -> dict[str, str]:
    """Give the emulator `limits`; return the app settings that match them."""
    defender(stack).configure(batch_delete_limits=limits)
    defender(stack).reset_limits()
    return {"BATCH_DELETE_RATE_LIMITS": limits}


def ids_of(rows: Iterable[dict[str, Any]]) -> list[int]:
    return [int(row["id"]) for row in rows]


def present_ids(stack: LocalStack) -> set[int]:
    return set(ids_of(defender(stack).indicators()))


def answered(stack: LocalStack, status: int) -> list[dict[str, Any]]:
    calls = batch_calls(defender(stack).calls())
    return [call for call in calls if call["status"] == status]


def confirmed_ids(stack: LocalStack) -> set[int]:
    """Every ID that some BatchDelete answered with 204 held."""
    return {int(i) for call in answered(stack, 204) for i in call["indicatorIds"]}


def busiest_window(calls: list[dict[str, Any]], window_s: float) -> int:
    """The most calls that arrived within any `window_s` seconds."""
    times = sorted(dt.datetime.fromisoformat(c["time"]).timestamp() for c in calls)
    return max(
        (
            sum(1 for t in times[i:] if t < start + window_s)
            for i, start in enumerate(times)
        ),
        default=0,
    )


def tail(worker: WorkerProcess) -> str:
    """The end of a worker's log, for failure messages."""
    return "\n".join(worker.log().splitlines()[-5:])


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout_s:.0f}s waiting until {what}")
        time.sleep(POLL_S)


def wait_until_quiet(stack: LocalStack, quiet_s: float = 1.0) -> None:
    """Until Defender has answered no call for `quiet_s` seconds: then no call
    a dead worker sent is still on its way."""
    seen = len(defender(stack).calls())
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < quiet_s:
        time.sleep(POLL_S)
        count = len(defender(stack).calls())
        if count != seen:
            seen, quiet_since = count, time.monotonic()


# -- jobs and their reports ------------------------------------------------------


def create_jobs(job_store: JobStore, *id_lists: list[int]) -> list[Job]:
    """Store one job per list, in this order (each a millisecond apart, so
    workers serve them first come, first served)."""
    jobs = []
    for ids in id_lists:
        jobs.append(job_store.create(ids)[0])
        time.sleep(0.002)
    return jobs


def report_of(job_store: JobStore, job: Job) -> dict[str, Any]:
    """The job's finished report; fails the test if the job is not finished."""
    current = job_store.get(job.id)
    assert current is not None
    assert current.status == JobStatus.COMPLETED, f"job {job.id} is {current.status}"
    output: dict[str, Any] = status_document(
        current, job_store.pieces_of(current), None
    )["output"]
    return output


def reported(output: dict[str, Any], name: str) -> set[int]:
    return {int(i) for i in output[name]}


def assert_settled(
    stack: LocalStack,
    job_store: JobStore,
    stored_pieces: StoredPieces,
    requests: dict[str, tuple[Job, list[int]]],
    tenant: list[dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Every job finished, every ID deleted or reported, deletions confirmed,
    the rest of the tenant untouched. Returns the reports by request name."""
    reports = {name: report_of(job_store, job) for name, (job, _) in requests.items()}
    confirmed = confirmed_ids(stack)
    deleted_by_any: list[int] = []
    for name, (_, ids) in requests.items():
        output = reports[name]
        deleted = reported(output, "deleted")
        not_found = reported(output, "notFound")
        assert output["counts"]["failed"] == 0, f"{name}: {output['failed']}"
        assert output["counts"]["forbidden"] == 0, name
        assert deleted | not_found == set(ids), f"{name}: IDs lost or invented"
        assert not deleted & not_found, f"{name}: IDs reported twice"
        assert deleted <= confirmed, f"{name}: deleted without a 204"
        deleted_by_any.extend(deleted)

    requested = {i for _, ids in requests.values() for i in ids}
    assert len(deleted_by_any) == len(set(deleted_by_any)), "one ID deleted twice"
    assert present_ids(stack) == set(ids_of(tenant)) - requested
    assert stored_pieces.unfinished() == []
    return reports


def abandon(job_store: JobStore, state_table: TableClient, job: Job) -> None:
    """Remove a job, finished or not, so that a worker that cannot finish it
    does not trouble later tests."""
    for piece in job_store.pieces_of(job):
        state_table.delete_entity(LOCAL_TENANT_ID.lower(), piece.row_key)
    current = job_store.get(job.id)
    if current is not None and not current.finished:
        job_store.set_status(current, JobStatus.FAILED)


def done_pieces(job_store: JobStore, jobs: list[Job]) -> int:
    return sum(
        1 for job in jobs for piece in job_store.pieces_of(job) if piece.state == "done"
    )


def held_pieces(job_store: JobStore, jobs: list[Job]) -> dict[str, tuple[Any, ...]]:
    """Claimed pieces of `jobs`: row key -> (claim, remaining IDs, lease end)."""
    return {
        piece.row_key: (piece.claim, tuple(piece.remaining), piece.lease_until)
        for job in jobs
        for piece in job_store.pieces_of(job)
        if piece.state == "claimed"
    }


# -- a worker killed in the middle of a job ------------------------------------


@pytest.mark.parametrize("partial_failure", ["none", "found"])
def test_a_killed_workers_pieces_wait_for_their_lease_then_finish_elsewhere(
    stack: LocalStack,
    seed_indicators: list[dict[str, Any]],
    job_store: JobStore,
    stored_pieces: StoredPieces,
    start_worker: StartWorker,
    partial_failure: str,
) -> None:
    tenant = load_tenant(
        stack,
        seed_indicators,
        6000,
        partial_failure=partial_failure,
        latency_s=LATENCY_S,
    )
    wanted = UNKNOWN_IDS + ids_of(tenant[:5500])
    (first,) = create_jobs(job_store, wanted)

    # Defender carries out two batches and turns every later call away
    # undone, so once those two are recorded the worker holds only pieces
    # that nobody has deleted.
    defender(stack).configure(batch_delete_limits="2/600s")
    doomed = start_worker()
    wait_until(lambda: done_pieces(job_store, [first]) == 2, 60, "two are done")
    doomed.kill()
    # Calls the worker sent before it died are turned away as well.
    wait_until_quiet(stack)
    defender(stack).configure(batch_delete_limits=stack.options.batch_delete_limits)
    defender(stack).reset_limits()
    # The long Retry-After the dead worker was told, it told every caller.
    stored_pieces.forget_budgets()
    held = held_pieces(job_store, [first])
    assert held, "the worker should have died holding pieces"
    lease_left = min(lease for _, _, lease in held.values()) - time.time()
    assert lease_left > LEASE_S - 30
    # A second request repeats part of a piece nobody holds, so whichever of
    # the two is sent later meets a 404 and the partial-failure behaviour.
    pending = [p for p in job_store.pieces_of(first) if p.state == "pending"]
    assert pending, "some pieces should not have been claimed yet"
    repeated = max(pending, key=lambda p: len(p.remaining)).remaining[:300]
    overlapping = repeated + ids_of(tenant[5500:5800])
    (second,) = create_jobs(job_store, overlapping)

    bystander = start_worker()
    assert bystander.wait(WORKER_EXIT_S) == 0, tail(bystander)
    # A claim the dead worker had already sent may land later: more pieces
    # can be held now, but none that was held has changed hands.
    still_held = held_pieces(job_store, [first])
    assert {key: still_held.get(key) for key in held} == held, "a lease was taken"
    assert answered(stack, 404), "the repeated IDs should have met a 404"
    stored_pieces.expire_leases()
    successor = start_worker()
    assert successor.wait(WORKER_EXIT_S) == 0, tail(successor)

    reports = assert_settled(
        stack,
        job_store,
        stored_pieces,
        {"first": (first, wanted), "second": (second, overlapping)},
        tenant,
    )
    assert set(UNKNOWN_IDS) <= reported(reports["first"], "notFound")
    held_ids = {i for _, ids, _ in held.values() for i in ids}
    assert held_ids - set(UNKNOWN_IDS) <= reported(reports["first"], "deleted")


def test_a_worker_killed_with_a_batch_in_flight_is_taken_over(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    job_store: JobStore,
    stored_pieces: StoredPieces,
    state_table: TableClient,
    start_worker: StartWorker,
) -> None:
    # Defender is slow today: a call reaches it at once and is carried out
    # 2.5 s later, whether or not its caller still waits for the answer.
    defender(stack).set_faults(latency_s=2.5)
    wanted = ids_of(tenant[:600])
    (job,) = create_jobs(job_store, wanted)
    try:
        doomed = start_worker()
        wait_until(
            lambda: any(c["api"] == "list" for c in defender(stack).calls()),
            60,
            "the worker has listed the tenant",
        )
        # Both batches leave within moments of the listing; the worker dies
        # while Defender still holds them, and Defender carries them out.
        time.sleep(1.5)
        doomed.kill()
        wait_until(lambda: len(answered(stack, 204)) == 2, 10, "both batches ran")
        assert not set(wanted) & present_ids(stack)
        defender(stack).set_faults(latency_s=0.0)
        stored_pieces.expire_leases()
        successor = start_worker()

        assert successor.wait(WORKER_EXIT_S) == 0, tail(successor)
        assert reported(report_of(job_store, job), "notFound") == set(wanted)
    finally:
        abandon(job_store, state_table, job)


# -- many workers sharing one budget -------------------------------------------


def test_four_workers_share_one_budget_and_finish_every_job(
    stack: LocalStack,
    seed_indicators: list[dict[str, Any]],
    job_store: JobStore,
    stored_pieces: StoredPieces,
    start_worker: StartWorker,
) -> None:
    limits = "5/1s,15/5s"
    tenant = load_tenant(stack, seed_indicators, 9000)
    env = paced(stack, limits)
    sizes = [2000, 1500, 1200, 900, 700, 501, 499, 300, 200, 100, 50, 20, 7, 1]
    requests: dict[str, tuple[Job, list[int]]] = {}
    start = 0
    for n, size in enumerate(sizes):
        ids = ids_of(tenant[start : start + size])
        unknown = [UNKNOWN_BASE + 100 + n] if n % 3 == 0 else []
        (job,) = create_jobs(job_store, unknown + ids)
        requests[f"job {n} of {size}"] = (job, unknown + ids)
        start += size

    workers = [start_worker(env=env) for _ in range(4)]
    for worker in workers:
        assert worker.wait(WORKER_EXIT_S) == 0, tail(worker)

    calls = defender(stack).calls()
    throttled = [c["time"] for c in calls if c["status"] == 429]
    assert throttled == [], "Defender had to throttle"
    for limit in parse_limits(limits):
        busiest = busiest_window(batch_calls(calls), limit.window_s)
        assert busiest <= limit.max_calls, f"{busiest} calls in {limit.window_s}s"
    reports = assert_settled(stack, job_store, stored_pieces, requests, tenant)
    for name, (_, ids) in requests.items():
        not_held = {i for i in ids if i > UNKNOWN_BASE}
        assert reported(reports[name], "notFound") == not_held, name
    senders = [w for w in workers if "BatchDelete 204" in w.log()]
    assert len(senders) >= 2, "the work should have been shared"


# -- Azurite frozen in the middle of a job -------------------------------------


def test_a_storage_outage_mid_job_delays_it_but_loses_nothing(
    stack: LocalStack,
    seed_indicators: list[dict[str, Any]],
    job_store: JobStore,
    stored_pieces: StoredPieces,
    start_worker: StartWorker,
) -> None:
    assert stack.azurite is not None
    tenant = load_tenant(stack, seed_indicators, 4000, latency_s=LATENCY_S)
    env = paced(stack)
    wanted = UNKNOWN_IDS + ids_of(tenant[:3500])
    (job,) = create_jobs(job_store, wanted)

    workers = [start_worker(env=env) for _ in range(2)]
    wait_until(lambda: len(answered(stack, 204)) >= 2, 60, "two batches are in")
    stack.azurite.pause()
    try:
        time.sleep(STORAGE_OUTAGE_S - 1)
        calls_so_far = len(batch_calls(defender(stack).calls()))
        time.sleep(1)
        calls_after = len(batch_calls(defender(stack).calls()))
    finally:
        stack.azurite.resume()
    assert calls_after == calls_so_far, "calls went out without the shared budget"

    for worker in workers:
        assert worker.wait(WORKER_EXIT_S) == 0, tail(worker)
    reports = assert_settled(
        stack, job_store, stored_pieces, {"job": (job, wanted)}, tenant
    )
    assert reported(reports["job"], "notFound") == set(UNKNOWN_IDS)


def assert_storage_unavailable(response: HttpResponse) -> None:
    """A 503 that says storage is unavailable and shows nothing internal."""
    assert response.status_code == 503
    text = response.get_body().decode()
    error = body_of(response)["error"]
    assert error["code"] == "StorageUnavailable"
    assert "storage is unavailable" in error["message"]
    for internal in ("Traceback", "AccountKey", "devstoreaccount1", "127.0.0.1"):
        assert internal not in text


def test_a_post_while_storage_is_down_answers_503_saying_so(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert stack.azurite is not None
    monkeypatch.setenv("SYNC_WAIT_SECONDS", "0")
    # Builds this configuration's clients before storage goes away.
    assert post({"IndicatorIds": [UNKNOWN_IDS[0]]}).status_code == 202

    stack.azurite.stop()
    try:
        started = time.monotonic()
        response = post({"IndicatorIds": [UNKNOWN_IDS[1]]})
        waited = time.monotonic() - started
    finally:
        stack.azurite.start()

    assert_storage_unavailable(response)
    assert waited < STORAGE_OUTAGE_S


def test_a_worker_rides_out_storage_refusing_connections(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    job_store: JobStore,
    start_worker: StartWorker,
) -> None:
    assert stack.azurite is not None
    worker = start_worker(seconds=10, idle_exit=False)
    wait_until(lambda: "WORKER_READY" in worker.log(), 30, "the worker is up")
    stack.azurite.stop()
    try:
        # Longer than the storage client's own connection retries.
        time.sleep(4)
    finally:
        stack.azurite.start()
    ids = ids_of(tenant[:10])
    (job,) = create_jobs(job_store, ids)

    assert worker.wait(WORKER_EXIT_S) == 0, tail(worker)
    assert reported(report_of(job_store, job), "deleted") == set(ids)


def test_a_post_while_storage_hangs_answers_503_before_it_returns(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert stack.azurite is not None
    monkeypatch.setenv("SYNC_WAIT_SECONDS", "0")
    # Builds this configuration's clients before storage goes away.
    assert post({"IndicatorIds": [UNKNOWN_IDS[0]]}).status_code == 202

    with ThreadPoolExecutor(1) as pool:
        stack.azurite.pause()
        try:
            answer = pool.submit(post, {"IndicatorIds": [UNKNOWN_IDS[1]]})
            try:
                response = answer.result(timeout=STORAGE_OUTAGE_S)
            except FutureTimeout:
                pytest.fail(f"no answer in {STORAGE_OUTAGE_S:.0f}s without storage")
        finally:
            stack.azurite.resume()

    assert_storage_unavailable(response)
    assert response.headers["Retry-After"]


def test_a_job_whose_storing_timed_out_is_not_stored_behind_the_callers_back(
    stack: LocalStack, tenant: list[dict[str, Any]], stored_pieces: StoredPieces
) -> None:
    assert stack.azurite is not None
    ids = [UNKNOWN_IDS[2]]
    # A client with no open connection, bounded like the app's own (which
    # waits 15 s for an answer) but quicker, so the request goes out on a
    # new connection that storage reads once it is back.
    fresh = TableClient.from_connection_string(
        stack.azurite.connection_string,
        STATE_TABLE,
        connection_timeout=2,
        read_timeout=3,
        retry_total=0,
    )
    with fresh:
        stack.azurite.pause()
        try:
            # Neither stored nor refused: the look after the timeout fails too.
            with pytest.raises(JobUnconfirmed) as unconfirmed:
                JobStore(fresh, LOCAL_TENANT_ID.lower()).create(ids)
        finally:
            stack.azurite.resume()

    def stored() -> list[dict[str, Any]]:
        rows = stored_pieces.unfinished()
        return [row for row in rows if json.loads(row["Ids"]) == ids]

    # Storage applies the transaction once it is back, as the answer warned,
    # and the job that then runs is the one the answer named.
    wait_until(lambda: bool(stored()), 10, "storage applied the transaction")
    assert [row["Job"] for row in stored()] == [unconfirmed.value.job_id]


def test_a_post_whose_job_is_stored_before_storage_fails_answers_202(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    job_store: JobStore,
    stored_pieces: StoredPieces,
    start_worker: StartWorker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert stack.azurite is not None
    # The POST works on its job for 6 s, but holds a small batch back for 5 s
    # so others may join it: storage goes away before the batch is claimed.
    monkeypatch.setenv("SYNC_WAIT_SECONDS", "6")
    monkeypatch.setenv("BATCH_LINGER_SECONDS", "5")
    # Builds this configuration's clients before storage goes away.
    assert get().status_code == 200
    ids = ids_of(tenant[:10])

    def stored_job() -> str | None:
        rows = stored_pieces.unfinished()
        jobs = [row["Job"] for row in rows if set(json.loads(row["Ids"])) == set(ids)]
        return jobs[0] if jobs else None

    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(post, {"IndicatorIds": ids})
        wait_until(lambda: stored_job() is not None, 30, "the job is stored")
        job_id = stored_job()
        stack.azurite.stop()
        try:
            response = answer.result(timeout=WORKER_EXIT_S)
        finally:
            stack.azurite.start()

    # The job exists and carries on: the caller gets its status URL.
    assert response.status_code == 202, response.get_body()
    assert response.headers["Location"].split("?")[0].endswith(f"/{job_id}")
    assert response.headers["Retry-After"]
    assert body_of(response)["id"] == job_id
    assert start_worker().wait(WORKER_EXIT_S) == 0
    polled = get(job_id)
    assert polled.status_code == 200
    deleted = {int(i) for i in body_of(polled)["output"]["deleted"]}
    assert deleted == set(ids)
    assert deleted <= confirmed_ids(stack)


# -- Defender did it, the worker never learnt it ---------------------------------


@pytest.mark.parametrize("partial_failure", ["none", "found"])
def test_ids_deleted_by_a_call_whose_answer_was_lost_are_reported_not_found(
    stack: LocalStack,
    seed_indicators: list[dict[str, Any]],
    job_store: JobStore,
    stored_pieces: StoredPieces,
    start_worker: StartWorker,
    partial_failure: str,
) -> None:
    tenant = load_tenant(stack, seed_indicators, 3000, partial_failure=partial_failure)
    # Every call does its work, then answers 500: the worker retries with
    # backoff and is killed before it records anything.
    defender(stack).set_faults(error_rate=1.0, error_after_commit=True)
    first_ids = ids_of(tenant[:300])
    (first,) = create_jobs(job_store, first_ids)

    doomed = start_worker()
    wait_until(lambda: bool(answered(stack, 500)), 60, "a committed call failed")
    doomed.kill()
    defender(stack).set_faults(error_rate=0.0, error_after_commit=False)
    assert not set(first_ids) & present_ids(stack), "Defender deleted them"
    (piece,) = job_store.pieces_of(first)
    assert piece.state == "claimed"
    assert sorted(piece.remaining) == sorted(first_ids)
    assert piece.outcome.settled_ids() == []

    # A later request joins the resent batch, so the resend meets a 404.
    later_ids = ids_of(tenant[300:450])
    (later,) = create_jobs(job_store, later_ids)
    stored_pieces.expire_leases()
    successor = start_worker()
    assert successor.wait(WORKER_EXIT_S) == 0, tail(successor)

    reports = assert_settled(
        stack,
        job_store,
        stored_pieces,
        {"first": (first, first_ids), "later": (later, later_ids)},
        tenant,
    )
    assert reported(reports["first"], "notFound") == set(first_ids)
    assert not set(first_ids) & confirmed_ids(stack)


def test_a_long_retry_after_holds_work_back_without_killing_the_worker(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    job_store: JobStore,
    start_worker: StartWorker,
) -> None:
    # Another tool sharing the app registration has spent the hour's calls.
    defender(stack).set_faults(force_429=1, retry_after_s=1000)
    ids = ids_of(tenant[:10])
    (job,) = create_jobs(job_store, ids)

    worker = start_worker(seconds=6, idle_exit=False)

    assert worker.wait(WORKER_EXIT_S) == 0, tail(worker)
    assert held_pieces(job_store, [job]) == {}, "a dead worker holds the piece"


class BudgetSpentMidway:
    """Defender at the client seam, for a batch whose budget runs out midway:
    the first call is refused 403 (the batch is split), the second deletes
    its half, and then the shared budget allows no call for `wait_s`.

    Between worker processes that moment cannot be arranged, so this stand-in
    drives a worker in the test's own process, against the real job store.
    """

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self.calls: list[list[int]] = []

    def batch_delete(self, ids: Sequence[int]) -> None:
        self.calls.append(list(ids))
        if len(self.calls) == 1:
            raise DefenderError("403", status=403, code="Forbidden", target="t")
        if len(self.calls) > 2:
            raise BudgetExhausted(API_BATCH_DELETE, self.wait_s)

    def list_indicators(self, **_: Any) -> Iterator[dict[str, Any]]:
        return iter(())


def test_a_budget_spent_midway_keeps_what_was_confirmed_and_holds_back_the_rest(
    job_store: JobStore, state_table: TableClient
) -> None:
    ids = UNKNOWN_IDS
    (job,) = create_jobs(job_store, ids)
    stand_in = BudgetSpentMidway(wait_s=1000)
    budget = InProcessBudget({API_BATCH_DELETE: parse_rate_limits("30/2s")})
    client: Any = stand_in
    worker = Worker(job_store, client, budget, concurrency=1, linger_s=0)
    started = time.time()
    try:
        worker.drain(deadline=started + WORKER_EXIT_S)

        (piece,) = job_store.pieces_of(job)
        assert len(stand_in.calls) == 3, "the batch, one half, then the budget"
        confirmed = stand_in.calls[1]
        assert sorted(piece.outcome.deleted) == sorted(confirmed)
        assert sorted(piece.outcome.settled_ids()) == sorted(confirmed)
        assert sorted(piece.remaining) == sorted(set(ids) - set(confirmed))
        assert piece.state == "pending"
        assert piece.attempts == 0, "no call was made for the rest"
        assert piece.not_before >= started + stand_in.wait_s
    finally:
        abandon(job_store, state_table, job)


def test_a_repeated_large_request_is_settled_as_not_found(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    job_store: JobStore,
    state_table: TableClient,
    start_worker: StartWorker,
) -> None:
    ids = ids_of(tenant[:600])
    (first,) = create_jobs(job_store, ids)
    assert start_worker().wait(WORKER_EXIT_S) == 0
    assert reported(report_of(job_store, first), "deleted") == set(ids)
    # The same request again, as a caller retrying without an idempotency key.
    (repeat,) = create_jobs(job_store, ids)
    try:
        worker = start_worker()

        assert worker.wait(WORKER_EXIT_S) == 0, tail(worker)
        assert reported(report_of(job_store, repeat), "notFound") == set(ids)
    finally:
        abandon(job_store, state_table, repeat)


def test_a_job_left_running_with_every_piece_done_is_finished_by_a_poll(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    job_store: JobStore,
    state_table: TableClient,
    start_worker: StartWorker,
) -> None:
    ids = ids_of(tenant[:10])
    (job,) = create_jobs(job_store, ids)
    assert start_worker().wait(WORKER_EXIT_S) == 0
    assert report_of(job_store, job)["counts"]["deleted"] == 10
    # The state a crash between recording the last piece and setting the
    # job's status leaves behind.
    state_table.update_entity(
        {
            "PartitionKey": LOCAL_TENANT_ID.lower(),
            "RowKey": f"job-{job.id}",
            "RuntimeStatus": JobStatus.RUNNING.value,
        }
    )
    try:
        assert start_worker().wait(WORKER_EXIT_S) == 0
        polled = get(job.id)

        assert polled.status_code == 200, body_of(polled)["customStatus"]
        assert body_of(polled)["output"]["counts"]["deleted"] == 10
    finally:
        current = job_store.get(job.id)
        if current is not None and not current.finished:
            job_store.set_status(current, JobStatus.COMPLETED)


# -- a listing taken while indicators disappear --------------------------------


def test_indicators_that_shift_pages_during_a_listing_are_still_deleted(
    stack: LocalStack,
    seed_indicators: list[dict[str, Any]],
    job_store: JobStore,
    start_worker: StartWorker,
) -> None:
    # Each call waits 0.6 s at Defender: time enough to change the tenant
    # between the first page and the second.
    tenant = load_tenant(stack, seed_indicators, 12_000, latency_s=0.6)
    # Both sides of the first page's 10,000-row boundary, so no piece lies
    # wholly among the rows the shift hides.
    wanted = ids_of(tenant[9_700:10_700])
    (job,) = create_jobs(job_store, wanted)

    worker = start_worker()
    wait_until(
        lambda: any(c["api"] == "list" for c in defender(stack).calls()),
        60,
        "the first page is read",
    )
    # Another app, or Defender's expiry, removes 600 earlier indicators before
    # the second page is read.
    defender(stack).load(tenant[600:])
    assert worker.wait(WORKER_EXIT_S) == 0

    output = report_of(job_store, job)
    assert not set(wanted) & present_ids(stack), "requested indicators remain"
    assert reported(output, "deleted") == set(wanted)
