"""Timer trigger: the scheduled cleanup policy (CLEANUP_POLICY)."""

from __future__ import annotations

import azure.functions as func

from shared.handlers import handle_cleanup


def main(timer: func.TimerRequest) -> None:
    handle_cleanup(past_due=timer.past_due)
