"""Fixtures: the deployment templates, the API spec and the README, as data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
AZUREDEPLOY = ROOT / "deploy" / "azuredeploy.json"
PLAYBOOK = ROOT / "deploy" / "playbook.json"
OPENAPI = ROOT / "openapi.yaml"
README = ROOT / "README.md"


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return _json(AZUREDEPLOY)


@pytest.fixture(scope="session")
def playbook() -> dict[str, Any]:
    return _json(PLAYBOOK)


@pytest.fixture(scope="session")
def openapi() -> dict[str, Any]:
    spec: dict[str, Any] = read_yaml(OPENAPI)
    return spec


@pytest.fixture(scope="session")
def readme() -> str:
    return README.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def function_configs() -> dict[str, dict[str, Any]]:
    """Each function folder's function.json, by folder name."""
    return {
        path.parent.name: _json(path) for path in sorted(ROOT.glob("*/function.json"))
    }


@pytest.fixture(scope="session")
def host_config() -> dict[str, Any]:
    return _json(ROOT / "host.json")


def _json(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document
