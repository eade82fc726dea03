"""Timer trigger: picks up unfinished deletion work on a schedule."""

from __future__ import annotations

import azure.functions as func

from shared.handlers import handle_timer


def main(timer: func.TimerRequest) -> None:
    handle_timer(past_due=timer.past_due)
