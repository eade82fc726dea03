"""``python -m emulator [--port N] [--signing-key K] [--empty]``.

Serves the emulator in the foreground on 127.0.0.1 and prints
``EMULATOR_URL=http://127.0.0.1:PORT`` once it answers. Tokens must be signed
with the same key the local identity stand-ins use: pass it with
``--signing-key``; without one a random key is made and only the control
endpoints are of use. Stops on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from emulator.config import EmulatorConfig
from emulator.server import start_emulator
from localdev.tokens import TokenSigner

__all__ = ["main"]

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_WAKE_INTERVAL_S = 1.0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until interrupted; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)
    if args.signing_key is None:
        print(
            "no --signing-key given: tokens from other processes will fail",
            file=sys.stderr,
        )
    signer = TokenSigner(key=args.signing_key) if args.signing_key else TokenSigner()

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with start_emulator(
        EmulatorConfig(signer=signer), port=args.port, seed=not args.empty
    ) as running:
        print(f"EMULATOR_URL={running.url}", flush=True)
        try:
            while not stopping.wait(_WAKE_INTERVAL_S):
                pass
        except KeyboardInterrupt:
            pass
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m emulator",
        description="Local stand-in for Defender for Endpoint's indicator API.",
    )
    parser.add_argument("--port", type=int, default=0, help="port (0 picks a free one)")
    parser.add_argument("--signing-key", help="HS256 key shared with the token issuer")
    parser.add_argument("--empty", action="store_true", help="start with no indicators")
    return parser


if __name__ == "__main__":
    sys.exit(main())
