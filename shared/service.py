"""Wiring: the long-lived clients for one configuration and tenant.

One `Service` per configuration, tenant, storage patience and process holds
the Defender client, the job store, the shared budget and the worker.
Everything a tenant owns (jobs, budget, daily cap, audit) lives in its own
table partition, so one tenant's backlog never slows another's. HTTP requests
use services whose storage calls give up within seconds (`shared.storage`);
timers and worker processes use patient ones.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from .caps import DailyCap
from .credentials import DefenderTokenProvider, SecretSource
from .defender import API_BATCH_DELETE, API_LIST, DefenderClient
from .errors import RequestError
from .jobs import Job, JobStore
from .settings import Settings
from .storage import BACKGROUND, StoragePatience, open_state_table
from .table_budget import TableBudget
from .worker import Worker

__all__ = ["Service", "get_service", "max_waiting_callers", "resolve_tenant"]

logger = logging.getLogger(__name__)

# The Azure SDK logs every request's headers at INFO, and azure-identity every
# token it gets: in a function app that floods Application Insights, so only
# their warnings are kept. Our own client logs one line per Defender call.
for _name in ("azure.core.pipeline.policies.http_logging_policy", "azure.identity"):
    logging.getLogger(_name).setLevel(logging.WARNING)

# How often a caller whose job another thread or process is working on looks
# at it when not told sooner that it finished.
_WAIT_STEP_S = 2.0
_THREADS_SETTING = "PYTHON_THREADPOOL_THREAD_COUNT"


def max_waiting_callers() -> int:
    """Callers of one process that may wait for their jobs at once: half
    the Python worker's threads (its `PYTHON_THREADPOOL_THREAD_COUNT`, else
    the standard pool's `min(32, cores + 4)`), so that waiting callers never
    hold every thread; see `Service.work_on`."""
    text = os.environ.get(_THREADS_SETTING, "")
    threads = int(text) if text.isdigit() and int(text) > 0 else None
    return max(1, (threads or min(32, (os.cpu_count() or 1) + 4)) // 2)


_services: dict[tuple[Settings, str, StoragePatience], Service] = {}
_services_lock = threading.Lock()


@dataclass
class Service:
    """The clients one configuration and tenant need, built once per process."""

    settings: Settings
    tenant_id: str
    client: DefenderClient
    store: JobStore
    worker: Worker
    daily_cap: DailyCap
    budget: TableBudget
    is_home: bool
    _draining: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    _waiters: dict[str, threading.Event] = dataclasses.field(default_factory=dict)
    _waiters_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.worker.on_finished = self._job_finished

    @classmethod
    def build(
        cls,
        settings: Settings,
        tenant_id: str,
        patience: StoragePatience = BACKGROUND,
    ) -> Service:
        """The clients for one tenant; raises StorageError."""
        tenant_settings = dataclasses.replace(settings, tenant_id=tenant_id)
        table = open_state_table(settings, patience)
        partition = tenant_id.lower()
        budget = TableBudget(
            table,
            partition,
            {
                API_BATCH_DELETE: settings.batch_delete_limits,
                API_LIST: settings.list_limits,
            },
        )
        secrets = SecretSource(tenant_settings)
        tokens = DefenderTokenProvider(tenant_settings, secrets)
        client = DefenderClient(settings.api_url, tokens, budget)
        store = JobStore(table, partition)
        worker = Worker(
            store,
            client,
            budget,
            linger_s=settings.linger_s,
            max_linger_s=settings.max_linger_s,
            concurrency=settings.concurrency,
        )
        cap = DailyCap(table, partition, settings.max_deletes_per_day)
        is_home = tenant_id == settings.tenant_id
        return cls(
            tenant_settings, tenant_id, client, store, worker, cap, budget, is_home
        )

    def work_on(self, job: Job, seconds: float, *, fresh: bool = False) -> Job:
        """Drain pending work until `job` finishes or time runs out.

        One background drain per process runs at a time (see `_drain`);
        callers wait on their jobs, so a burst of requests does not multiply
        the polling of the state table. At most `max_waiting_callers()`
        callers of a process wait at once: each holds one of the host's
        threads, and a burst of requests that all waited would hold every
        one of them while their own jobs could not even be stored. A caller
        past that is answered at once (a 202 with the status URL); its job
        is done all the same. A `fresh` job was stored just now, so it is
        not read back first.

        Returns the job as last read; raises StorageError when it cannot be
        read (the work itself rides out storage failures).
        """
        if job.finished or seconds <= 0:
            return job
        finished = self._wait_slot(job.id)
        if finished is None:
            return job
        deadline = time.time() + seconds
        try:
            current = job
            if not fresh:
                self.worker.finish_if_settled(job.id)
                current = self.store.get(job.id) or job
            while not current.finished and time.time() < deadline:
                self._drain(job.id, deadline)
                finished.wait(min(_WAIT_STEP_S, max(0.0, deadline - time.time())))
                current = self.store.get(job.id) or current
            return current
        finally:
            with self._waiters_lock:
                self._waiters.pop(job.id, None)

    def _drain(self, job_id: str, deadline: float) -> None:
        """Drain in the background until `job_id` finishes, nothing is left
        or the deadline passes, unless this process drains already.

        The caller only waits for its job: a Defender call that is slow, or
        a budget that makes one wait, delays the work but never the answer
        past the caller's deadline. A call under way when the deadline
        passes is finished and recorded in the background.
        """
        if not self._draining.acquire(blocking=False):
            return

        def drain() -> None:
            try:
                self.worker.drain(
                    deadline=deadline, done=lambda: self._finished(job_id)
                )
            except Exception:
                logger.exception("draining for job %s failed", job_id)
            finally:
                self._draining.release()

        threading.Thread(target=drain, name=f"drain-{job_id}", daemon=True).start()

    @property
    def waiting_callers(self) -> int:
        """How many callers of this process wait for their jobs now."""
        with self._waiters_lock:
            return len(self._waiters)

    def _wait_slot(self, job_id: str) -> threading.Event | None:
        """The event set when `job_id` finishes in this process, or None
        when enough callers wait already."""
        with self._waiters_lock:
            crowded = len(self._waiters) >= max_waiting_callers()
            if crowded and job_id not in self._waiters:
                return None
            return self._waiters.setdefault(job_id, threading.Event())

    def _job_finished(self, job_id: str) -> None:
        with self._waiters_lock:
            waiter = self._waiters.get(job_id)
        if waiter is not None:
            waiter.set()

    def _finished(self, job_id: str) -> bool:
        job = self.store.get(job_id)
        return job is None or job.finished


def resolve_tenant(settings: Settings, requested: str | None) -> str:
    """The tenant a request is for; raises RequestError if it is not allowed."""
    if requested is None:
        return settings.tenant_id
    wanted = requested.strip().lower()
    for tenant in settings.tenant_ids:
        if tenant.lower() == wanted:
            return tenant
    raise RequestError(
        f"tenant {requested!r} is not one this app may act on; add it to the "
        "app setting DEFENDER_TENANT_IDS",
        status=403,
        code="TenantNotAllowed",
    )


def get_service(
    tenant_id: str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    patience: StoragePatience = BACKGROUND,
) -> Service:
    """The service for the current settings, a tenant and a storage patience.

    Raises SettingsError, RequestError (a tenant not allowed) or StorageError.
    """
    settings = Settings.from_environ(environ)
    tenant = resolve_tenant(settings, tenant_id)
    key = (settings, tenant, patience)
    with _services_lock:
        service = _services.get(key)
        if service is None:
            service = _services[key] = Service.build(settings, tenant, patience)
        return service
