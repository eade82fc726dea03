"""The Defender client against the emulator over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from emulator import EmulatorConfig, RunningEmulator, start_emulator
from localdev.tokens import TokenSigner
from shared.defender import API_BATCH_DELETE, API_LIST, DefenderClient
from shared.errors import DefenderError, DefenderUnavailable
from shared.pacing import InProcessBudget
from shared.settings import parse_rate_limits

AUDIENCE = "https://api.securitycenter.microsoft.com"


class Tokens:
    """Hands out a bad token first when asked, then good ones."""

    def __init__(self, signer: TokenSigner, *, bad_first: bool = False) -> None:
        self.signer = signer
        self.bad_first = bad_first
        self.fresh_requests = 0

    def token(self, *, fresh: bool = False) -> str:
        if fresh:
            self.fresh_requests += 1
        if self.bad_first and not fresh:
            return "not-a-token"
        token, _ = self.signer.issue(
            audience=AUDIENCE, tenant_id="t", app_id="a", roles=["Ti.ReadWrite.All"]
        )
        return token


@pytest.fixture(scope="module")
def running() -> Iterator[RunningEmulator]:
    with start_emulator(EmulatorConfig(signer=TokenSigner()), seed=False) as server:
        yield server


@pytest.fixture
def rows(running: RunningEmulator) -> list[dict[str, Any]]:
    data = [
        {"id": str(i), "indicatorValue": f"10.0.0.{i}", "rbacGroupIds": []}
        for i in range(1, 26)
    ]
    running.emulator.load(data)
    running.emulator.reset_limits()
    running.emulator.clear_calls()
    running.emulator.set_faults(error_rate=0.0, force_429=0, drop_rate=0.0)
    return data


def client(running: RunningEmulator, tokens: Tokens | None = None) -> DefenderClient:
    budget = InProcessBudget(
        {
            API_BATCH_DELETE: parse_rate_limits("30/60s"),
            API_LIST: parse_rate_limits("100/60s"),
        }
    )
    tokens = tokens or Tokens(running.emulator.config.signer)
    return DefenderClient(running.url, tokens, budget, backoff_base_s=0.01)


def test_a_401_gets_one_fresh_token(
    running: RunningEmulator, rows: list[dict[str, Any]]
) -> None:
    tokens = Tokens(running.emulator.config.signer, bad_first=True)

    client(running, tokens).batch_delete([1, 2])

    assert tokens.fresh_requests == 1
    statuses = [c["status"] for c in running.emulator.calls()]
    assert statuses == [401, 204]


def test_404_raises_with_defenders_code_and_target(
    running: RunningEmulator, rows: list[dict[str, Any]]
) -> None:
    with pytest.raises(DefenderError) as caught:
        client(running).batch_delete([1, 999])

    error = caught.value
    assert (error.status, error.code) == (404, "NotFound")
    assert error.target
    assert error.url and error.url.endswith("/api/indicators/BatchDelete")


def test_429_waits_for_retry_after_and_succeeds(
    running: RunningEmulator, rows: list[dict[str, Any]]
) -> None:
    running.emulator.set_faults(force_429=1, retry_after_s=1)

    client(running).batch_delete([3])

    assert [c["status"] for c in running.emulator.calls()] == [429, 204]


def test_5xx_is_retried_then_given_up_with_the_last_answer(
    running: RunningEmulator, rows: list[dict[str, Any]]
) -> None:
    running.emulator.set_faults(error_rate=1.0)

    with pytest.raises(DefenderUnavailable) as caught:
        client(running).batch_delete([4])

    assert caught.value.status in (500, 503)
    assert len(running.emulator.calls()) == 5


def test_dropped_connections_are_retried(
    running: RunningEmulator, rows: list[dict[str, Any]]
) -> None:
    running.emulator.set_faults(drop_rate=0.5, seed=11)

    for indicator_id in range(5, 15):
        client(running).batch_delete([indicator_id])

    remaining = {r["id"] for r in running.emulator.indicators()}
    assert not remaining & {str(i) for i in range(5, 15)}


def test_listing_pages_through_every_indicator(
    running: RunningEmulator, rows: list[dict[str, Any]]
) -> None:
    listed = list(client(running).list_indicators(page_size=10))

    assert [r["id"] for r in listed] == [r["id"] for r in rows]


def test_listing_applies_the_filter(
    running: RunningEmulator, rows: list[dict[str, Any]]
) -> None:
    listed = list(
        client(running).list_indicators(odata_filter="indicatorValue eq '10.0.0.7'")
    )

    assert [r["id"] for r in listed] == ["7"]


def test_single_delete_reports_whether_the_indicator_existed(
    running: RunningEmulator, rows: list[dict[str, Any]]
) -> None:
    api = client(running)

    assert api.delete(20) is True
    assert api.delete(20) is False
