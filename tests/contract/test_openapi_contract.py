"""The running API against its OpenAPI description, with schemathesis.

Every operation in openapi.yaml is called through the local functions host
with generated requests; no answer may be a 5xx, and every answer must match
the description (status codes, headers, bodies).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    unsupported_method,
)

from localdev.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
# A body past the documented size cap is rightly refused with 413, which
# schemathesis does not count as a rejection unless told.
REJECTIONS = [400, 401, 403, 404, 405, 413, 415, 422, 429]
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}}}
)
schema = schemathesis.openapi.from_path(ROOT / "openapi.yaml", config=CONFIG)

pytestmark = pytest.mark.integration


def test_the_host_serves_the_description(stack: LocalStack) -> None:
    assert stack.host is not None

    response = requests.get(f"{stack.host.base_url}/openapi.yaml", timeout=30)

    assert response.status_code == 200
    assert response.content == (ROOT / "openapi.yaml").read_bytes()


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_description(
    case: Any, stack: LocalStack, tenant: list[dict[str, Any]]
) -> None:
    assert stack.host is not None

    case.call_and_validate(
        base_url=stack.host.base_url,
        headers={"x-functions-key": stack.host.function_key},
        # Methods a route does not declare are refused by the Functions host
        # before the app sees them; that behaviour is the host's, not ours.
        excluded_checks=[unsupported_method, allow_header_conformance],
    )
