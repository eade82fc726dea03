"""deploy/playbook.json: the Sentinel playbook's structure, offline."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from shared.http_api import parse_delete_request

from .conftest import PLAYBOOK
from .templates import resources_of_type, walk_actions

ARM_SCHEMA = (
    "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
)
SENTINEL_CONNECTION = "@parameters('$connections')['azuresentinel']['connectionId']"
INCIDENT_ARM_ID = "@triggerBody()?['object']?['id']"
RELATED_ENTITIES = "triggerBody()?['object']?['properties']?['relatedEntities']"
# The entity kinds whose values Defender indicators can carry, as the incident
# trigger names them (ARM entity kinds, lower-cased).
IOC_ENTITY_KINDS = ("ip", "dnsresolution", "url", "filehash")
# What the function must be told, per the API contract for playbooks.
REQUIRED_BODY_FIELDS = {
    "IndicatorValues",
    "requestedBy",
    "incidentId",
    "incidentUrl",
    "reason",
}
_EXPRESSION = re.compile(r"^@(?!\{)|@\{[^}]*\}")


def _workflow(playbook: dict[str, Any]) -> dict[str, Any]:
    (workflow,) = resources_of_type(playbook, "Microsoft.Logic/workflows")
    return workflow


def _actions(playbook: dict[str, Any]) -> dict[str, dict[str, Any]]:
    definition = _workflow(playbook)["properties"]["definition"]
    return dict(walk_actions(definition["actions"]))


def _the_http_action(playbook: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    calls = [(n, a) for n, a in _actions(playbook).items() if a["type"] == "Http"]
    assert len(calls) == 1, "one call of the function"
    return calls[0]


def _sample(value: Any) -> Any:
    """A request body with each Logic Apps expression replaced by a sample."""
    if isinstance(value, dict):
        return {key: _sample(item) for key, item in value.items()}
    if isinstance(value, str) and _EXPRESSION.search(value):
        if "if(empty(" in value:
            return None  # an optional field the expression leaves out
        if value.startswith("@body("):
            return ["203.0.113.7", "evil.example"]
        return "https://portal.example/incident/1"
    return value


def test_is_an_arm_deployment_template(playbook: dict[str, Any]) -> None:
    assert playbook["$schema"] == ARM_SCHEMA
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", playbook["contentVersion"])


def test_trigger_is_the_sentinel_incident_trigger(playbook: dict[str, Any]) -> None:
    workflow = _workflow(playbook)
    triggers = workflow["properties"]["definition"]["triggers"]
    connections = workflow["properties"]["parameters"]["$connections"]["value"]

    assert len(triggers) == 1
    (trigger,) = triggers.values()
    assert trigger["type"] == "ApiConnectionWebhook"
    assert trigger["inputs"]["path"] == "/incident-creation"
    assert trigger["inputs"]["host"]["connection"]["name"] == SENTINEL_CONNECTION
    api = connections["azuresentinel"]["id"]
    (variable,) = re.findall(r"variables\('([^']+)'\)", api)
    assert playbook["variables"][variable].endswith("'azuresentinel')]")


@pytest.mark.parametrize("kind", IOC_ENTITY_KINDS)
def test_entities_of_each_ioc_kind_are_collected(
    playbook: dict[str, Any], kind: str
) -> None:
    filters = [
        action
        for action in _actions(playbook).values()
        if action["type"] == "Query"
        and RELATED_ENTITIES in action["inputs"]["from"]
        and f"'{kind}'" in action["inputs"]["where"]
    ]

    assert len(filters) == 1


def test_values_sent_are_the_union_of_every_collected_kind(
    playbook: dict[str, Any],
) -> None:
    actions = _actions(playbook)
    _, call = _the_http_action(playbook)
    source = call["inputs"]["body"]["IndicatorValues"]
    (values,) = re.findall(r"@body\('([^']+)'\)", source)
    selects = [n for n, a in actions.items() if a["type"] == "Select"]

    assert len(selects) == len(IOC_ENTITY_KINDS)
    for select in selects:
        assert f"body('{select}')" in actions[values]["inputs"]["from"]


def test_function_is_called_at_its_url_parameter_with_the_key_parameter(
    playbook: dict[str, Any],
) -> None:
    _, call = _the_http_action(playbook)
    workflow = _workflow(playbook)["properties"]
    declared = workflow["definition"]["parameters"]
    wired = workflow["parameters"]

    assert call["inputs"]["method"] == "POST"
    assert call["inputs"]["uri"] == "@parameters('FunctionEndpointUrl')"
    assert call["inputs"]["headers"]["x-functions-key"] == "@parameters('FunctionKey')"
    assert declared["FunctionKey"]["type"] == "SecureString"
    assert wired["FunctionKey"]["value"] == "[parameters('FunctionKey')]"
    assert (
        wired["FunctionEndpointUrl"]["value"] == "[parameters('FunctionEndpointUrl')]"
    )
    assert playbook["parameters"]["FunctionKey"]["type"] == "securestring"
    assert "defaultValue" not in playbook["parameters"]["FunctionKey"]


def test_key_is_hidden_from_run_history(playbook: dict[str, Any]) -> None:
    _, call = _the_http_action(playbook)

    assert "inputs" in call["runtimeConfiguration"]["secureData"]["properties"]


def test_body_carries_the_incident_and_is_a_valid_request(
    playbook: dict[str, Any],
) -> None:
    _, call = _the_http_action(playbook)
    body = call["inputs"]["body"]

    assert set(body) >= REQUIRED_BODY_FIELDS
    assert body["incidentId"] == "@{" + INCIDENT_ARM_ID[1:] + "}"
    assert "incidentUrl" in body["requestedBy"]
    request = parse_delete_request(
        "application/json", json.dumps(_sample(body)).encode()
    )
    assert request.values and request.incident_url and request.reason


def test_asynchronous_polling_is_left_on(playbook: dict[str, Any]) -> None:
    _, call = _the_http_action(playbook)

    assert "DisableAsyncPattern" not in PLAYBOOK.read_text(encoding="utf-8")
    assert "operationOptions" not in call


def test_function_is_called_only_for_a_closed_incident(
    playbook: dict[str, Any],
) -> None:
    name, _ = _the_http_action(playbook)
    (guard,) = [
        action
        for action in _actions(playbook).values()
        if action["type"] == "If" and name in action["actions"]
    ]

    assert "Closed" in json.dumps(guard["expression"])
    assert "['status']" in json.dumps(guard["expression"])


def test_report_is_added_to_the_incident_as_a_comment(
    playbook: dict[str, Any],
) -> None:
    name, _ = _the_http_action(playbook)
    comments = {
        n: a
        for n, a in _actions(playbook).items()
        if a["type"] == "ApiConnection" and a["inputs"]["path"] == "/Incidents/Comment"
    }
    after_call = {
        n: a for n, a in comments.items() if a["runAfter"].get(name) == ["Succeeded"]
    }

    assert len(after_call) == 1
    (comment,) = after_call.values()
    assert comment["inputs"]["body"]["incidentArmId"] == INCIDENT_ARM_ID
    assert f"body('{name}')" in comment["inputs"]["body"]["message"]
    assert comment["inputs"]["host"]["connection"]["name"] == SENTINEL_CONNECTION
    failures = [
        n for n, a in comments.items() if "Failed" in a["runAfter"].get(name, [])
    ]
    assert failures, "a failed call is reported on the incident too"
