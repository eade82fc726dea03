"""openapi.yaml: a well-formed OpenAPI 3.0 document that matches the code.

Where openapi-spec-validator is installed the spec is validated with it as
well; without it, the structural checks below are what holds the spec
together (which $refs resolve, path parameters, operation IDs, security).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate

import shared.handlers as handlers
import shared.http_api as http_api
from shared.errors import Problem, RequestError
from shared.jobs import Job, JobStatus
from shared.report import BatchOutcome, DeletionReport, Failure
from shared.status import status_document

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
TEXT_FIELDS = ("reason", "requestedBy", "requestId", "incidentId", "incidentUrl")
# Sample values for a request that uses every field the spec lists.
SAMPLES: dict[str, Any] = {
    "IndicatorIds": ["40050", 40051],
    "IndicatorValues": ["203.0.113.7"],
    "indicatorType": "IpAddress",
    "dryRun": True,
    "tenantId": "contoso.onmicrosoft.com",
}
# Codes the handlers answer with outside RequestError's status mapping.
HANDLER_ERROR_CODES = ("Misconfigured", "StorageUnavailable", "UpstreamUnavailable")


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(spec: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references: {ref}"
    node: Any = spec
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _schema(spec: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec["components"]["schemas"][name]
    return schema


def _properties(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """A schema's properties, with those of its allOf parts."""
    schema = _schema(spec, name)
    found = dict(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        part = _resolve(spec, part["$ref"]) if "$ref" in part else part
        found.update(part.get("properties", {}))
    return found


def _request_schema(spec: dict[str, Any]) -> dict[str, Any]:
    post = spec["paths"]["/indicators/batch-delete"]["post"]
    ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema: dict[str, Any] = _resolve(spec, ref)
    return schema


def _maximal_request(spec: dict[str, Any]) -> dict[str, Any]:
    properties = _request_schema(spec)["properties"]
    return {name: SAMPLES.get(name, f"sample {name}") for name in properties}


def test_is_a_valid_openapi_description(openapi: dict[str, Any]) -> None:
    validate(openapi)


def test_is_an_openapi_3_0_document(openapi: dict[str, Any]) -> None:
    assert re.fullmatch(r"3\.0\.\d+", openapi["openapi"])
    assert openapi["info"]["title"] and openapi["info"]["version"]
    assert all(path.startswith("/") for path in openapi["paths"])


def test_every_reference_resolves(openapi: dict[str, Any]) -> None:
    refs = set(_refs(openapi))

    assert refs
    for ref in refs:
        assert _resolve(openapi, ref) is not None, ref


def test_operations_have_unique_ids_and_declared_responses(
    openapi: dict[str, Any],
) -> None:
    ids = [operation["operationId"] for _, _, operation in _operations(openapi)]

    assert len(ids) == len(set(ids))
    for _, _, operation in _operations(openapi):
        assert operation["responses"]
        for status in operation["responses"]:
            assert re.fullmatch(r"[1-5][0-9][0-9]|default", status)


def test_path_parameters_match_the_path_templates(openapi: dict[str, Any]) -> None:
    for path, item in openapi["paths"].items():
        templated = set(re.findall(r"\{([^}]+)\}", path))
        declared = {
            p["name"] for p in item.get("parameters", []) if p.get("in") == "path"
        }
        assert templated == declared, path


def test_function_key_is_accepted_in_the_header_or_the_query(
    openapi: dict[str, Any],
) -> None:
    schemes = openapi["components"]["securitySchemes"]
    places = {(s["type"], s["in"], s["name"]) for s in schemes.values()}

    assert places == {
        ("apiKey", "header", "x-functions-key"),
        ("apiKey", "query", "code"),
    }
    assert {name for option in openapi["security"] for name in option} == set(schemes)


def test_paths_and_methods_are_the_functions_route(
    openapi: dict[str, Any],
    function_configs: dict[str, dict[str, Any]],
    host_config: dict[str, Any],
) -> None:
    (http,) = [
        b
        for b in function_configs["BatchDeleteHttp"]["bindings"]
        if b["type"] == "httpTrigger"
    ]
    base = "/" + http["route"].replace("/{jobId?}", "")
    prefix = "/" + host_config["extensions"]["http"]["routePrefix"]

    assert set(openapi["paths"]) == {base, base + "/{jobId}"}
    assert {m for _, m, _ in _operations(openapi)} <= set(http["methods"])
    assert all(s["url"].endswith(prefix) for s in openapi["servers"])


def test_request_schema_lists_exactly_the_fields_the_code_reads(
    openapi: dict[str, Any],
) -> None:
    # Every field the spec lists is accepted (an unknown one would be
    # refused), and together they set every field of DeleteRequest.
    body = json.dumps(_maximal_request(openapi)).encode()
    request = http_api.parse_delete_request("application/json", body)

    for field in dataclasses.fields(http_api.DeleteRequest):
        default = (
            field.default_factory()
            if field.default_factory is not dataclasses.MISSING
            else field.default
        )
        assert getattr(request, field.name) != default, field.name


def test_a_field_outside_the_schema_is_refused(openapi: dict[str, Any]) -> None:
    body = {**_maximal_request(openapi), "IndicatorIDs": ["1"]}

    assert "IndicatorIDs" not in _request_schema(openapi)["properties"]
    with pytest.raises(RequestError) as caught:
        http_api.parse_delete_request("application/json", json.dumps(body).encode())
    assert [p.where for p in caught.value.problems] == ["IndicatorIDs"]


def test_request_limits_are_the_codes_limits(openapi: dict[str, Any]) -> None:
    properties = _request_schema(openapi)["properties"]
    values = properties["IndicatorValues"]
    kind = _resolve(openapi, properties["indicatorType"]["allOf"][0]["$ref"])

    assert values["maxItems"] == http_api.MAX_VALUES_PER_REQUEST
    assert values["items"]["maxLength"] == http_api.MAX_VALUE_CHARS
    assert tuple(kind["enum"]) == http_api.INDICATOR_TYPES
    for name in (*TEXT_FIELDS, "tenantId"):
        assert properties[name]["maxLength"] == http_api.MAX_TEXT_FIELD_CHARS, name
    assert f"{http_api.MAX_BODY_BYTES:,}" in json.dumps(openapi)


def test_job_list_filters_and_limits_are_the_codes(openapi: dict[str, Any]) -> None:
    listing = openapi["paths"]["/indicators/batch-delete"]["get"]
    names = {
        (_resolve(openapi, p["$ref"]) if "$ref" in p else p)["name"]
        for p in listing["parameters"]
    }
    (top,) = [p for p in listing["parameters"] if p.get("name") == "top"]
    statuses = _schema(openapi, "RuntimeStatus")["enum"]

    assert names == {"status", "requestedBy", "since", "top", "tenantId"}
    assert top["schema"]["maximum"] == handlers.MAX_LISTED_JOBS
    assert top["schema"]["default"] == handlers.DEFAULT_LISTED_JOBS
    assert statuses == [status.value for status in JobStatus]


def test_error_codes_are_the_ones_the_code_answers_with(
    openapi: dict[str, Any],
) -> None:
    error = _schema(openapi, "ErrorResponse")["properties"]["error"]
    codes = set(error["properties"]["code"]["enum"])
    problem = error["properties"]["problems"]["items"]["properties"]
    source = inspect.getsource(handlers)

    for status in (400, 404, 405, 413, 415):
        answer = http_api.error_response(RequestError("x", status=status))
        assert answer.body is not None
        assert answer.body["error"]["code"] in codes, status
    for code in HANDLER_ERROR_CODES:
        assert code in codes and f'"{code}"' in source, code
    assert set(problem) == set(Problem("where", "what").to_dict())


def test_report_schemas_match_what_the_code_writes(openapi: dict[str, Any]) -> None:
    failure = Failure(7, 403, "Forbidden", "target-1", "device group")
    outcome = BatchOutcome(deleted=[1], not_found=[2], forbidden=[failure])
    report = DeletionReport(requested=3, outcome=outcome).to_dict()

    assert set(report) <= set(_properties(openapi, "Report"))
    assert set(report["counts"]) == set(_properties(openapi, "Counts"))
    assert set(failure.to_dict()) == set(_properties(openapi, "Failure"))


def test_status_document_schema_matches_what_the_code_writes(
    openapi: dict[str, Any],
) -> None:
    job = Job(
        id="0" * 32,
        status=JobStatus.COMPLETED,
        created="2026-12-01T00:00:00.000Z",
        updated="2026-12-01T00:00:01.000Z",
        requested=0,
        piece_prefix="piece-0-",
    )
    document = status_document(job, [], "https://app.example/api/x")

    assert set(document) <= set(_properties(openapi, "JobStatus"))
    assert set(document["customStatus"]) == set(_properties(openapi, "Progress"))
    assert set(document["input"]) <= set(_properties(openapi, "JobInput"))
