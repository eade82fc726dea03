"""The daily cap against Azurite, from many threads of several processes.

Each `DailyCap` below has a table client of its own, as each instance of
the app would: its threads share one group commit, and the instances meet
only at the row's ETag.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from localdev.stack import LocalStack
from shared.caps import DailyCap
from shared.errors import RequestError
from shared.settings import Settings
from shared.storage import open_state_table

pytestmark = pytest.mark.integration

INSTANCES = 3
THREADS_PER_INSTANCE = 16
COUNT = 7
MAXIMUM = 200


def test_concurrent_reservations_never_pass_the_cap(stack: LocalStack) -> None:
    partition = f"test-{uuid.uuid4().hex}"
    settings = Settings.from_environ()
    caps = [
        DailyCap(open_state_table(settings), partition, MAXIMUM)
        for _ in range(INSTANCES)
    ]

    def reserve(cap: DailyCap) -> int | RequestError:
        try:
            return cap.reserve(COUNT)
        except RequestError as exc:
            return exc

    jobs = [cap for cap in caps for _ in range(THREADS_PER_INSTANCE)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(reserve, jobs))

    granted = sorted(r for r in results if isinstance(r, int))
    refused = [r for r in results if isinstance(r, RequestError)]
    fits = MAXIMUM // COUNT
    # Every request that fits is admitted, none past the cap, and each
    # admitted one was told a distinct running total.
    assert granted == [COUNT * n for n in range(1, fits + 1)]
    assert len(refused) == len(jobs) - fits
    assert {r.code for r in refused} == {"DailyCapExceeded"}
    # The stored count is what was admitted: nothing counted twice or lost.
    with open_state_table(settings) as table:
        rows = list(
            table.query_entities("PartitionKey eq @p", parameters={"p": partition})
        )
    assert [row["Used"] for row in rows] == [COUNT * fits]
