"""The operators' command line against the local stack: in process through
`cli.__main__.main`, and as a real ``python -m cli`` subprocess."""

from __future__ import annotations

import csv
import getpass
import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cli.__main__ import main
from localdev.stack import LOCAL_CLIENT_ID, REPO_ROOT, LocalStack
from shared.service import get_service

from .helpers import batch_calls, body_of, get

pytestmark = pytest.mark.integration

OWN_APP = "ioc-batch-delete"
SUBPROCESS_TIMEOUT_S = 120
_JOB_ID = re.compile(r"job ([0-9a-f]{32})")


def present_ids(stack: LocalStack) -> set[str]:
    assert stack.emulator is not None
    return {row["id"] for row in stack.emulator.emulator.indicators()}


def emulator_calls(stack: LocalStack) -> list[dict[str, Any]]:
    assert stack.emulator is not None
    return stack.emulator.emulator.calls()


def someone() -> str:
    """A requester name no other test uses, to find this test's jobs."""
    return f"cli-test-{uuid.uuid4().hex[:12]}"


def job_id_in(text: str) -> str:
    match = _JOB_ID.search(text)
    assert match, f"no job ID in {text!r}"
    return match.group(1)


def run_cli(
    stack: LocalStack, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env if env is not None else os.environ | stack.settings,
        cwd=REPO_ROOT,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )


def load_seed_tenant(stack: LocalStack, seed: list[dict[str, Any]]) -> None:
    assert stack.emulator is not None
    stack.emulator.emulator.load(seed)
    stack.emulator.emulator.clear_calls()


@pytest.mark.parametrize(
    ("delimiter", "header"),
    [
        (",", ["indicatorValue", "IndicatorId", "note"]),
        (";", ["Value", "Indicator ID"]),
        (",", None),
    ],
)
def test_delete_reads_the_id_column_of_a_csv(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    delimiter: str,
    header: list[str] | None,
) -> None:
    chosen = tenant[:40]
    text = io.StringIO()
    writer = csv.writer(text, delimiter=delimiter)
    if header is None:
        writer.writerows([r["id"], r["indicatorValue"]] for r in chosen)
    else:
        writer.writerow(header)
        writer.writerows([r["indicatorValue"], r["id"], "revoked"] for r in chosen)
    source = tmp_path / "revoked.csv"
    source.write_text(text.getvalue())
    report = tmp_path / "report.json"

    status = main(
        [
            *("delete", "--file", str(source), "--reason", "feed revoked"),
            *("--requested-by", someone(), "--output", str(report)),
        ]
    )

    assert status == 0
    out = capsys.readouterr().out
    assert "requested 40, deleted 40, not found 0" in out
    assert f"report written to {report}" in out
    wanted = {r["id"] for r in chosen}
    assert set(json.loads(report.read_text())["output"]["deleted"]) == wanted
    assert not wanted & present_ids(stack)
    assert len(present_ids(stack)) == len(tenant) - len(chosen)


def test_delete_in_a_subprocess_reads_a_plain_list_from_stdin(
    stack: LocalStack, tenant: list[dict[str, Any]]
) -> None:
    chosen = [r["id"] for r in tenant[100:130]]
    listing = ["# revoked by the feed on Monday", "", *chosen[:15], "  ", *chosen[15:]]

    done = run_cli(stack, "delete", "--file", "-", stdin="\n".join(listing) + "\n")

    assert done.returncode == 0, done.stderr
    assert "requested 30, deleted 30, not found 0" in done.stdout
    assert "Traceback" not in done.stderr
    assert not set(chosen) & present_ids(stack)


def test_a_bad_line_is_named_by_its_number_and_nothing_is_deleted(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = ["# two bad lines", tenant[0]["id"], "", "abc", tenant[1]["id"], "-5"]
    source = tmp_path / "ids.txt"
    source.write_text("\n".join(lines) + "\n")
    who = someone()

    status = main(["delete", "--file", str(source), "--requested-by", who])

    assert status == 2
    err = capsys.readouterr().err
    assert f"{source} line 4: 'abc' is not a positive integer" in err
    assert f"{source} line 6: '-5' is not a positive integer" in err
    assert "line 2" not in err and "line 5" not in err
    assert "nothing was submitted" in err
    assert len(present_ids(stack)) == len(tenant)
    assert batch_calls(emulator_calls(stack)) == []
    assert get_service().store.find_jobs(limit=5, requested_by=who) == []


def test_unblock_removes_every_indicator_carrying_the_value(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    seed_indicators: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert stack.emulator is not None
    counts = Counter(i["indicatorValue"] for i in seed_indicators)
    twice = next(value for value, n in counts.items() if n == 2)
    carriers = [i for i in seed_indicators if i["indicatorValue"] == twice]
    others = [i for i in tenant[:200] if i["indicatorValue"] != twice]
    stack.emulator.emulator.load(others + carriers)

    status = main(["unblock", twice, "198.51.100.250", "--reason", "false positive"])

    assert status == 0
    out = capsys.readouterr().out
    assert "requested 2, deleted 2" in out
    assert "no indicator carries: 198.51.100.250" in out
    assert present_ids(stack) == {i["id"] for i in others}


def test_unblock_dry_run_from_a_value_file_deletes_nothing(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    row = next(i for i in tenant if i["indicatorType"] == "DomainName")
    source = tmp_path / "values.csv"
    source.write_text(f"indicatorValue,comment\n{row['indicatorValue']},INC-1\n")

    status = main(["unblock", "--file", str(source), "--dry-run"])

    assert status == 0
    out = capsys.readouterr().out
    assert "would delete 1 indicator(s)" in out
    assert row["id"] in out
    assert batch_calls(emulator_calls(stack)) == []
    assert len(present_ids(stack)) == len(tenant)


def test_cleanup_preview_selects_only_owned_indicators_and_deletes_nothing(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    seed_indicators: list[dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    load_seed_tenant(stack, seed_indicators)
    policy = {
        "owners": {"applications": [OWN_APP]},
        "rules": {"olderThanDays": 60},
        "maxPerRun": 15000,
        "mode": "delete",
    }
    report = tmp_path / "preview.json"

    status = main(
        [
            "cleanup",
            "--preview",
            "--policy",
            json.dumps(policy),
            "--output",
            str(report),
        ]
    )

    assert status == 0
    out = capsys.readouterr().out
    document = json.loads(report.read_text())
    candidates = document["selection"]["candidates"]
    assert len(candidates) > 20
    assert {c["application"] for c in candidates} == {OWN_APP}
    assert f"cleanup preview (job {document['id']}): {len(candidates)}" in out
    assert f"by rule: olderThanDays {len(candidates)}" in out
    assert f"({len(candidates) - 20} more; --all lists them" in out
    skipped = document["selection"]["skipped"]
    assert skipped["allowedProtected"] > 0
    assert f"allowedProtected {skipped['allowedProtected']}" in out
    assert document["input"]["dryRun"] is True
    assert len(present_ids(stack)) == len(seed_indicators)
    assert batch_calls(emulator_calls(stack)) == []


def test_cleanup_previews_the_configured_policy_by_default(
    monkeypatch: pytest.MonkeyPatch,
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    feed = "MISP to Defender"
    policy = {"owners": {"applications": [feed]}, "rules": {"olderThanDays": 1}}
    monkeypatch.setenv("CLEANUP_POLICY", json.dumps(policy))

    status = main(["cleanup", "--all"])

    assert status == 0
    table = capsys.readouterr().out.splitlines()[3:]
    assert table[0].split()[:2] == ["id", "rule"]
    assert len(table) > 20
    assert all(feed in line for line in table[1:])
    assert len(present_ids(stack)) == len(tenant)


def test_cleanup_without_a_policy_says_how_to_give_one(
    monkeypatch: pytest.MonkeyPatch,
    stack: LocalStack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("CLEANUP_POLICY", raising=False)

    assert main(["cleanup"]) == 2
    assert (
        "CLEANUP_POLICY is not set; give one with --policy" in capsys.readouterr().err
    )


def test_cleanup_run_of_a_preview_policy_is_refused_without_yes(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = {"owners": {"applications": [OWN_APP]}, "rules": {"olderThanDays": 1}}

    status = main(["cleanup", "--run", "--policy", json.dumps(policy)])

    assert status == 2
    assert "--yes" in capsys.readouterr().err
    assert emulator_calls(stack) == []


def test_cleanup_run_with_yes_deletes_exactly_the_selected(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    seed_indicators: list[dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    load_seed_tenant(stack, seed_indicators)
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(
        json.dumps(
            {
                "owners": {"applications": [OWN_APP]},
                "rules": {"olderThanDays": 30},
                "maxPerRun": 25,
            }
        )
    )
    report = tmp_path / "run.json"

    status = main(
        [
            "cleanup",
            "--run",
            "--yes",
            "--policy",
            str(policy_file),
            "--output",
            str(report),
        ]
    )

    assert status == 0
    document = json.loads(report.read_text())
    selected = {str(c["id"]) for c in document["selection"]["candidates"]}
    assert len(selected) == 25
    assert set(document["output"]["deleted"]) == selected
    assert "requested 25, deleted 25" in capsys.readouterr().out
    remaining = present_ids(stack)
    assert not selected & remaining
    assert len(remaining) == len(seed_indicators) - 25


def test_jobs_lists_a_cli_job_that_the_http_api_sees_too(
    tenant: list[dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "ids.txt"
    source.write_text(tenant[0]["id"] + "\n")
    who = someone()
    assert main(["delete", "--file", str(source), "--requested-by", who]) == 0
    job_id = job_id_in(capsys.readouterr().out)

    status = main(["jobs", "--requested-by", who, "--status", "Completed"])

    assert status == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split() == [
        "id",
        "status",
        "created",
        "requestedBy",
        "requested",
        "reason",
    ]
    assert listed[1].split()[:2] == [job_id, "Completed"]
    audit = body_of(get(job_id))["input"]
    assert audit["source"] == "cli"
    assert audit["caller"]["operator"] == getpass.getuser()
    assert audit["requestedBy"] == who


def test_watch_finishes_a_job_started_with_no_wait(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chosen = [r["id"] for r in tenant[:600]]
    source = tmp_path / "ids.txt"
    source.write_text("\n".join(chosen) + "\n")
    assert main(["delete", "--file", str(source), "--no-wait"]) == 0
    started = capsys.readouterr().out
    job_id = job_id_in(started)
    assert f"follow it with: python -m cli watch {job_id}" in started

    status = main(["watch", job_id])

    assert status == 0
    assert f"job {job_id}: Completed" in capsys.readouterr().out
    assert not set(chosen) & present_ids(stack)


def test_a_repeated_idempotency_key_returns_the_first_job(
    tenant: list[dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "ids.txt"
    source.write_text(tenant[0]["id"] + "\n")
    key = ["--idempotency-key", uuid.uuid4().hex]
    assert main(["delete", "--file", str(source), *key]) == 0
    first = job_id_in(capsys.readouterr().out)

    status = main(["delete", "--file", str(source), *key])

    assert status == 0
    out = capsys.readouterr().out
    assert f"job {first} was submitted before with this key" in out
    assert "deleted 1" in out


def test_forbidden_ids_give_exit_code_1(
    stack: LocalStack,
    tenant: list[dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert stack.emulator is not None
    stack.emulator.emulator.configure(
        exposure={LOCAL_CLIENT_ID: frozenset({"4127", "4131", "4140", "4152"})}
    )
    chosen = tenant[:300]
    blocked = {i["id"] for i in chosen if "4133" in i["rbacGroupIds"]}
    source = tmp_path / "ids.txt"
    source.write_text("\n".join(i["id"] for i in chosen) + "\n")

    status = main(["delete", "--file", str(source)])

    assert status == 1
    out = capsys.readouterr().out
    assert f"forbidden {len(blocked)}, failed 0" in out
    assert all(i in out for i in blocked)


def test_a_settings_error_is_one_line_and_exit_code_2(stack: LocalStack) -> None:
    env = {
        name: value
        for name, value in (os.environ | stack.settings).items()
        if name != "DEFENDER_CLIENT_ID"
    }

    done = run_cli(stack, "jobs", env=env)

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: invalid app settings: DEFENDER_CLIENT_ID")


@pytest.mark.parametrize(
    "args",
    [
        ["watch", "0" * 32],
        ["watch", "not/a-job"],
        ["jobs", "--since", "yesterday"],
        ["jobs", "--top", "0"],
        ["cleanup", "--preview", "--run"],
        ["delete"],
        ["unblock"],
    ],
)
def test_unusable_arguments_exit_with_code_2(
    stack: LocalStack, args: list[str]
) -> None:
    assert main(args) == 2
