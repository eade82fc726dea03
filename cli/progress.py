"""Following a job: working on it here, in short slices, with a progress bar.

Each slice is one `Service.work_on` call, the same work a status poll does,
so the job moves while it is watched; between slices the bar is refreshed
from the job's pieces. The job is durable: stopping here (Ctrl-C) leaves it
to the timer or to the next `watch`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from shared.jobs import Job
from shared.service import Service
from shared.status import status_document

from .failures import FollowInterrupted

__all__ = ["WORK_SLICE_S", "follow"]

logger = logging.getLogger(__name__)

# Short enough for a lively bar, long enough that a slice sends whole batches.
WORK_SLICE_S = 1.0
_SHOWN_ERROR_CHARS = 40
_ID_CHARS = 8


def follow(service: Service, job: Job, *, stream: TextIO | None = None) -> Job:
    """Work on `job` until it finishes; returns it finished.

    Raises FollowInterrupted on Ctrl-C, and StorageError.
    """
    current = job
    bar = _bar(job, stream or sys.stderr)
    try:
        with logging_redirect_tqdm(), bar:
            _refresh(bar, service, current)
            while not current.finished:
                current = service.work_on(current, WORK_SLICE_S)
                _refresh(bar, service, current)
    except KeyboardInterrupt:
        tenant = None if service.is_home else service.tenant_id
        raise FollowInterrupted(job.id, tenant) from None
    logger.info("job %s finished: %s", job.id, current.status.value)
    return current


def _bar(job: Job, stream: TextIO) -> tqdm[Any]:
    # disable=None: no bar when the stream is not a terminal (a log, a pipe).
    return tqdm(
        total=job.requested,
        desc=f"job {job.id[:_ID_CHARS]}",
        unit="id",
        file=stream,
        disable=None,
        dynamic_ncols=True,
    )


def _refresh(bar: tqdm[Any], service: Service, job: Job) -> None:
    pieces = service.store.pieces_of(job)
    progress = status_document(job, pieces, None)["customStatus"]
    bar.n = job.requested - progress["pending"]
    postfix = {
        "deleted": progress["deleted"],
        "notFound": progress["notFound"],
        "failed": progress["failed"] + progress["forbidden"],
    }
    if progress["lastError"]:
        postfix["retrying"] = str(progress["lastError"])[:_SHOWN_ERROR_CHARS]
    bar.set_postfix(postfix, refresh=False)
    bar.refresh()
