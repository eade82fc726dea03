"""`make run`: delete this app's indicators from a realistic local tenant.

`make cleanup-preview` (``--cleanup-preview``) instead previews, on the same
seeded tenant, what a scheduled cleanup policy owning ``ioc-batch-delete``
would delete, and deletes nothing.

Starts the local stack seeded with 15,000 indicators, then calls the HTTP
function as a Sentinel playbook would: it sends the IDs of every indicator
the application ``ioc-batch-delete`` created, the way real callers send them
(some as integers, some twice, a few that no longer exist), follows the 202
status URL while showing progress, prints the report and checks against the
emulator that exactly those indicators are gone and every other remains.
Exits 1 if anything is off.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import sys
import time
from collections.abc import Iterable
from typing import Any

import requests
from tqdm import tqdm

from cli.__main__ import main as cli_main
from localdev.stack import DEFAULT_WORKDIR, LocalStack, StackOptions

__all__ = ["main"]

OWN_APPLICATION = "ioc-batch-delete"
DUPLICATES = 40
MISSING = 5
POLL_TIMEOUT_S = 600.0
# The POST answers 202 at once, so the demo shows the polling that Logic Apps
# does; in Azure the default is to work up to 20 seconds before answering.
DEMO_SYNC_WAIT_S = "0"
_BAR = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} IDs"


# The policy the cleanup preview shows: this app's own indicators that are
# over 90 days old, or over 30 days old with no expiry.
PREVIEW_POLICY = {
    "owners": {"applications": [OWN_APPLICATION]},
    "rules": {"olderThanDays": 90, "noExpiryOlderThanDays": 30},
    "maxPerRun": 15000,
    "mode": "preview",
}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    args = sys.argv[1:] if argv is None else argv
    if args == ["--cleanup-preview"]:
        return _cleanup_preview()
    if args:
        print("usage: python -m localdev.demo [--cleanup-preview]", file=sys.stderr)
        return 2
    options = StackOptions(
        workdir=DEFAULT_WORKDIR / "run",
        keep_storage=False,
        settings={"SYNC_WAIT_SECONDS": DEMO_SYNC_WAIT_S},
    )
    print("starting Azurite, the Defender emulator, identity stand-ins, functions host")
    with LocalStack(options) as stack:
        assert stack.host is not None
        before = _tenant(stack.emulator_url)
        ours = sorted(
            int(i["id"]) for i in before if i["application"] == OWN_APPLICATION
        )
        missing = _absent_ids(before, MISSING)
        body = _request_body(ours, missing)
        print(
            f"tenant holds {len(before)} indicators; {len(ours)} were created by "
            f"{OWN_APPLICATION}; sending {len(body['IndicatorIds'])} entries "
            f"({DUPLICATES} repeated, {MISSING} that do not exist)"
        )
        report = _delete(stack.host.base_url, stack.host.function_key, body)
        _print_report(report)
        after = _tenant(stack.emulator_url)
        problems = _check(before, after, ours, missing, report)
    for problem in problems:
        print(f"FAILED: {problem}")
    if not problems:
        print("OK: exactly the requested indicators are gone; all others remain")
    return 1 if problems else 0


def _cleanup_preview() -> int:
    options = StackOptions(workdir=DEFAULT_WORKDIR / "run", keep_storage=False)
    print("starting Azurite, the Defender emulator, identity stand-ins, functions host")
    with LocalStack(options) as stack:
        before = len(_tenant(stack.emulator_url))
        print(f"cleanup policy: {json.dumps(PREVIEW_POLICY)}")
        status = cli_main(
            ["cleanup", "--preview", "--policy", json.dumps(PREVIEW_POLICY)]
        )
        after = len(_tenant(stack.emulator_url))
    if status != 0 or after != before:
        print(f"FAILED: the preview exited {status}; tenant {before} -> {after}")
        return 1
    print(f"OK: preview only; the tenant still holds all {after} indicators")
    return 0


def _tenant(emulator_url: str) -> list[dict[str, Any]]:
    response = requests.get(f"{emulator_url}/_emulator/indicators", timeout=60)
    response.raise_for_status()
    rows: list[dict[str, Any]] = response.json()["value"]
    return rows


def _absent_ids(tenant: Iterable[dict[str, Any]], count: int) -> list[int]:
    present = {int(i["id"]) for i in tenant}
    low = min(present)
    return [i for i in range(low, low + 10 * count + len(present)) if i not in present][
        :count
    ]


def _request_body(ours: list[int], missing: list[int]) -> dict[str, Any]:
    rng = random.Random(7)
    entries: list[Any] = [i if rng.random() < 0.5 else str(i) for i in ours]
    entries += [str(i) for i in rng.sample(ours, DUPLICATES)]
    entries += [str(i) for i in missing]
    rng.shuffle(entries)
    return {
        "IndicatorIds": entries,
        "requestedBy": "make run",
        "reason": f"remove indicators created by {OWN_APPLICATION}",
    }


def _delete(base_url: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
    url = f"{base_url}/indicators/batch-delete"
    response = requests.post(
        url, json=body, headers={"x-functions-key": key}, timeout=120
    )
    total = len({int(i) for i in body["IndicatorIds"]})
    if response.status_code == 202:
        print(f"202 Accepted; polling {response.headers['Location'].split('?')[0]}")
    # disable=None: no bar when the output is not a terminal (a log, CI).
    with tqdm(total=total, desc="settled", bar_format=_BAR, disable=None) as bar:
        deadline = time.monotonic() + POLL_TIMEOUT_S
        while response.status_code == 202 and time.monotonic() < deadline:
            status = response.json()
            progress = status["customStatus"]
            bar.update(progress["requested"] - progress["pending"] - bar.n)
            time.sleep(float(response.headers.get("Retry-After", "1")))
            response = requests.get(response.headers["Location"], timeout=120)
        if response.status_code != 200:
            raise SystemExit(
                f"the function answered {response.status_code}: {response.text}"
            )
        bar.update(total - bar.n)
    document: dict[str, Any] = response.json()
    return document


def _print_report(status: dict[str, Any]) -> None:
    output = status["output"]
    print(f"job {status['id']}: {status['runtimeStatus']}")
    print("counts:", json.dumps(output["counts"]))
    for name in ("notFound", "forbidden", "failed"):
        if output[name]:
            print(f"{name}: {json.dumps(output[name][:10])}")


def _check(
    before: list[dict[str, Any]],
    after: list[dict[str, Any]],
    ours: list[int],
    missing: list[int],
    status: dict[str, Any],
) -> list[str]:
    now = dt.datetime.now(dt.UTC)
    expired = {
        int(i["id"])
        for i in before
        if i["expirationTime"] and dt.datetime.fromisoformat(i["expirationTime"]) <= now
    }
    remaining = {int(i["id"]) for i in after}
    expected = {int(i["id"]) for i in before} - set(ours) - expired
    output = status["output"]
    problems = []
    if remaining != expected:
        problems.append(
            f"{len(remaining - expected)} indicators remain that should be gone, "
            f"{len(expected - remaining)} are gone that should remain"
        )
    if sorted(map(int, output["deleted"])) != ours:
        problems.append("the report's deleted list differs from the requested IDs")
    if sorted(map(int, output["notFound"])) != sorted(missing):
        problems.append("the report's notFound list differs from the absent IDs")
    if status["runtimeStatus"] != "Completed":
        problems.append(f"the job ended {status['runtimeStatus']}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
