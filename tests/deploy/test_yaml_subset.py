"""The YAML subset reader the spec tests fall back on without PyYAML."""

from __future__ import annotations

import importlib.util

import pytest

from .conftest import OPENAPI
from .yaml_subset import YamlSubsetError, load

SAMPLE = """\
# a comment
name: ioc
count: 3
ratio: 0.5
flag: true
nothing: null
version: 0.1.0
'200':
  description: |
    first line
      indented

    after a blank
  folded: >-
    one
    two
list:
  - a
  - 'it''s'
  - "x\\ty"
  - key: value
    other: [1, 'two', false]
  - nested:
      - deep
empty: []
none: {}
url: https://example.test/#frag
"""


def test_reads_mappings_lists_and_scalars_as_yaml_does() -> None:
    assert load(SAMPLE) == {
        "name": "ioc",
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "nothing": None,
        "version": "0.1.0",
        "200": {
            "description": "first line\n  indented\n\nafter a blank\n",
            "folded": "one two",
        },
        "list": [
            "a",
            "it's",
            "x\ty",
            {"key": "value", "other": [1, "two", False]},
            {"nested": ["deep"]},
        ],
        "empty": [],
        "none": {},
        "url": "https://example.test/#frag",
    }


@pytest.mark.parametrize(
    "text",
    [
        "a: &anchor 1",
        "a: *anchor",
        "a: !tag 1",
        "a: {b: 1}",
        "a: 1 # trailing comment",
        "a: b: c",
        "a: 1\na: 2",
        "a:\n\t- 1",
        "a: 'open",
        "a: [1, [2]]",
        "a: 1\n  b: 2",
    ],
)
def test_refuses_yaml_outside_the_subset(text: str) -> None:
    with pytest.raises(YamlSubsetError):
        load(text)


def test_agrees_with_pyyaml_on_the_spec_where_pyyaml_is_installed() -> None:
    if importlib.util.find_spec("yaml") is None:
        pytest.skip("PyYAML is not installed")
    import yaml

    text = OPENAPI.read_text(encoding="utf-8")

    assert load(text) == yaml.safe_load(text)
    assert load(SAMPLE) == yaml.safe_load(SAMPLE)
