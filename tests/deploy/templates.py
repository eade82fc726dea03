"""Reading ARM templates, Logic Apps definitions and the README offline.

Small helpers for the deployment tests: they look values up the way the
templates write them, without evaluating ARM's expression language beyond
the few forms the templates use for app settings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "PARAMETER_REF",
    "VARIABLE_REF",
    "app_settings",
    "code_span",
    "default_value",
    "markdown_table",
    "resources_of_type",
    "strings_in",
    "walk_actions",
]

PARAMETER_REF = re.compile(r"parameters\('([^']+)'\)")
VARIABLE_REF = re.compile(r"variables\('([^']+)'\)")
# The only expression forms an app setting may take and still count as a
# documented default: a parameter, or a parameter turned into a string.
_PARAMETER_VALUE = re.compile(r"\[(?:string\()?parameters\('([^']+)'\)\)?\]")
_CODE_SPAN = re.compile(r"`([^`]+)`")


def resources_of_type(template: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    """Every top-level resource of the given type."""
    wanted = kind.lower()
    return [r for r in template["resources"] if r["type"].lower() == wanted]


def app_settings(template: Mapping[str, Any]) -> dict[str, str]:
    """The function app's app settings, name to (unevaluated) value."""
    (site,) = resources_of_type(template, "Microsoft.Web/sites")
    entries = site["properties"]["siteConfig"]["appSettings"]
    names = [entry["name"] for entry in entries]
    assert len(names) == len(set(names)), f"duplicate app settings in {names}"
    return {entry["name"]: entry["value"] for entry in entries}


def default_value(template: Mapping[str, Any], value: str) -> str | None:
    """What an app setting is when every parameter keeps its default.

    A literal is itself; `[parameters('x')]` and `[string(parameters('x'))]`
    are x's default as a string; anything else is computed at deployment
    time and gives None.
    """
    if not value.startswith("["):
        return value
    match = _PARAMETER_VALUE.fullmatch(value)
    if match is None:
        return None
    parameter = template["parameters"][match.group(1)]
    default = parameter.get("defaultValue")
    if default is None or (isinstance(default, str) and default.startswith("[")):
        return None
    return str(default).lower() if isinstance(default, bool) else str(default)


def strings_in(node: Any) -> Iterator[str]:
    """Every string anywhere in a JSON document, keys included."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield key
            yield from strings_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings_in(item)


def walk_actions(actions: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every action of a Logic Apps definition, nested ones included."""
    for name, action in actions.items():
        yield name, action
        yield from walk_actions(action.get("actions", {}))
        yield from walk_actions(action.get("else", {}).get("actions", {}))
        for case in action.get("cases", {}).values():
            yield from walk_actions(case.get("actions", {}))
        yield from walk_actions(action.get("default", {}).get("actions", {}))


def markdown_table(text: str, heading: str) -> list[list[str]]:
    """The rows (cells stripped) of the first table under `heading`."""
    lines = text.splitlines()
    start = lines.index(heading)
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not all(set(cell) <= set("-: ") for cell in cells):
            rows.append(cells)
    return rows[1:]  # without the header row


def code_span(cell: str) -> str | None:
    """The text of the first `code` span in a table cell, if any."""
    match = _CODE_SPAN.search(cell)
    return match.group(1) if match else None
