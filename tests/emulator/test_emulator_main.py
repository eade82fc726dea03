"""``python -m emulator`` serves in the foreground and prints its URL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from localdev.tokens import TokenSigner

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = "test-signing-key-for-the-emulator-main"
STARTUP_TIMEOUT_S = 20


def test_the_module_prints_its_url_and_checks_tokens_with_the_key():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulator",
            "--port",
            "0",
            "--empty",
            "--signing-key",
            KEY,
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        name, _, url = line.partition("=")
        token, _ = TokenSigner(key=KEY).issue(
            audience="https://api.security.microsoft.com",
            tenant_id="t",
            app_id="a",
            roles=["Ti.ReadWrite.All"],
        )

        listed = requests.get(
            f"{url}/api/indicators",
            headers={"Authorization": f"Bearer {token}"},
            timeout=STARTUP_TIMEOUT_S,
        )

        assert name == "EMULATOR_URL"
        assert url.startswith("http://127.0.0.1:")
        assert listed.status_code == 200
        assert listed.json()["value"] == []
    finally:
        process.terminate()
        assert process.wait(timeout=STARTUP_TIMEOUT_S) == 0
