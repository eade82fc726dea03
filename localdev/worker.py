"""A worker process: drains pending deletion work, as function instances do.

In Azure every instance that runs a trigger of the app works on pending jobs.
This entry point does the same outside the Functions host, so that tests and
benchmarks can run several instances against one Azurite and one emulator,
and kill them mid-job. It reads the app settings from the environment.

    python -m localdev.worker [--seconds 60] [--idle-exit]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from shared.service import get_service

__all__ = ["main"]

IDLE_SLEEP_S = 0.2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="drain pending deletion work")
    parser.add_argument("--seconds", type=float, default=60.0, help="run this long")
    parser.add_argument(
        "--idle-exit", action="store_true", help="exit once no work is left"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    service = get_service()
    deadline = time.time() + args.seconds
    print("WORKER_READY", flush=True)
    while time.time() < deadline:
        sent = service.worker.drain(deadline=deadline)
        if sent == 0:
            if args.idle_exit:
                break
            time.sleep(IDLE_SLEEP_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())
