"""The scheduled cleanup: preview, deletion, and what it must never touch."""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.functions.timer import TimerRequest

import BatchDeleteCleanup
from localdev.stack import LocalStack
from shared.errors import SettingsError
from shared.service import get_service

from .helpers import batch_calls

pytestmark = pytest.mark.integration

OWN_APP = "ioc-batch-delete"


def run_cleanup_timer() -> None:
    BatchDeleteCleanup.main(TimerRequest(past_due=False))


def policy(**overrides: Any) -> str:
    document: dict[str, Any] = {
        "owners": {"applications": [OWN_APP]},
        "rules": {"olderThanDays": 30},
        "maxPerRun": 15000,
        "mode": "preview",
    }
    document.update(overrides)
    return json.dumps(document)


def latest_cleanup_job() -> dict[str, Any]:
    jobs = get_service().store.find_jobs(limit=1, requested_by="scheduled cleanup")
    assert jobs, "the cleanup should record a job"
    job = jobs[0]
    return {"id": job.id, "status": job.status.value, "audit": job.audit}


@pytest.fixture
def seeded(
    stack: LocalStack, seed_indicators: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    assert stack.emulator is not None
    stack.emulator.emulator.load(seed_indicators)
    stack.emulator.emulator.clear_calls()
    return seed_indicators


def test_preview_records_a_job_and_deletes_nothing(
    monkeypatch: pytest.MonkeyPatch, stack: LocalStack, seeded: list[dict[str, Any]]
) -> None:
    monkeypatch.setenv("CLEANUP_POLICY", policy())

    run_cleanup_timer()

    job = latest_cleanup_job()
    assert job["status"] == "Completed"
    assert job["audit"]["dryRun"] is True
    selection = job["audit"]["selection"]
    assert selection["candidates"] > 0
    assert stack.emulator is not None
    assert batch_calls(stack.emulator.emulator.calls()) == []
    assert len(stack.emulator.emulator.indicators()) == len(seeded)


def test_a_deleting_run_removes_only_old_owned_indicators(
    monkeypatch: pytest.MonkeyPatch, stack: LocalStack, seeded: list[dict[str, Any]]
) -> None:
    monkeypatch.setenv("CLEANUP_POLICY", policy(mode="delete"))
    by_id = {i["id"]: i for i in seeded}

    run_cleanup_timer()

    assert stack.emulator is not None
    remaining = {i["id"] for i in stack.emulator.emulator.indicators()}
    gone = set(by_id) - remaining
    assert gone, "the policy should have selected something"
    assert all(by_id[i]["application"] == OWN_APP for i in gone)
    assert all(by_id[i]["action"] != "Allowed" for i in gone)
    job = latest_cleanup_job()
    assert job["status"] == "Completed"
    assert job["audit"]["selection"]["candidates"] == len(gone)


def test_a_bad_policy_is_named_when_settings_are_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLEANUP_POLICY", '{"rules": {"olderThanDayz": 3}}')

    with pytest.raises(SettingsError, match=r"CLEANUP_POLICY: rules\.olderThanDayz"):
        run_cleanup_timer()
