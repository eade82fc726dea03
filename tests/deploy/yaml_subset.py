"""A reader for the block-style subset of YAML that `openapi.yaml` uses.

The project has no YAML library among its dependencies, so the deployment
tests read the spec with this instead of adding one for a single file. It
understands block mappings and `- ` lists nested by indentation, plain,
single-quoted and double-quoted scalars, `|` and `>` block scalars (with
`-` chomping), one-line `[a, b]` lists of scalars, `[]`, `{}` and full-line
comments. Anything else (anchors, tags, flow mappings, trailing comments,
tabs, multi-line plain scalars, duplicate keys) raises `YamlSubsetError`
naming the line, so the spec cannot silently drift outside what is checked.
Plain scalars resolve as YAML 1.2's core schema does: null, booleans,
integers and floats; everything else is a string.

Where PyYAML is installed, `test_yaml_subset.py` checks that both readers
agree on `openapi.yaml`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["YamlSubsetError", "load"]

_NULLS = frozenset({"null", "Null", "NULL", "~"})
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_UNSUPPORTED_START = tuple("&*!%@`{")
_BLOCK_HEADER = re.compile(r"([|>])(-?)")
_KEY = re.compile(r"""('(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|[^'"#\s][^:]*?)\s*:(?:\s+|$)""")


class YamlSubsetError(ValueError):
    """The text uses YAML outside the supported subset, or is malformed."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class _Line:
    number: int
    indent: int
    text: str


def load(text: str) -> Any:
    """Parse `text`; raises YamlSubsetError for anything outside the subset."""
    reader = _Reader(text.splitlines())
    first = reader.peek()
    if first is None:
        return None
    value = reader.node(first.indent)
    extra = reader.peek()
    if extra is not None:
        raise YamlSubsetError(extra.number, "unexpected indentation")
    return value


class _Reader:
    def __init__(self, raw: list[str]) -> None:
        self._raw = raw
        self._index = 0

    def peek(self) -> _Line | None:
        """The next line that carries content, skipping blanks and comments."""
        while self._index < len(self._raw):
            raw = self._raw[self._index]
            if "\t" in raw[: len(raw) - len(raw.lstrip())]:
                raise YamlSubsetError(self._index + 1, "tabs are not supported")
            stripped = raw.strip()
            if stripped and not stripped.startswith("#"):
                indent = len(raw) - len(raw.lstrip(" "))
                return _Line(self._index + 1, indent, stripped)
            self._index += 1
        return None

    def node(self, indent: int) -> Any:
        line = self.peek()
        assert line is not None
        if _is_item(line.text):
            return self.sequence(indent)
        return self.mapping(indent, line.text)

    def mapping(self, indent: int, first_text: str) -> dict[str, Any]:
        result: dict[str, Any] = {}
        text: str | None = first_text
        while text is not None:
            number = self._index + 1
            key, rest = _split_key(number, text)
            if key in result:
                raise YamlSubsetError(number, f"duplicate key {key!r}")
            self._index += 1
            result[key] = self.value(indent, rest, number)
            line = self.peek()
            if line is None or line.indent < indent:
                break
            if line.indent > indent or _is_item(line.text):
                raise YamlSubsetError(line.number, "unexpected indentation")
            text = line.text
        return result

    def sequence(self, indent: int) -> list[Any]:
        result: list[Any] = []
        while True:
            line = self.peek()
            if line is None or line.indent < indent:
                return result
            if line.indent > indent or not _is_item(line.text):
                raise YamlSubsetError(line.number, "unexpected indentation")
            rest = line.text[1:].lstrip(" ")
            if rest and _KEY.match(rest):
                # "- key: value" opens a mapping indented past the dash.
                inner = indent + (len(line.text) - len(rest))
                result.append(self.mapping(inner, rest))
                continue
            self._index += 1
            result.append(self.value(indent, rest, line.number))

    def value(self, indent: int, rest: str, number: int) -> Any:
        """The value after `key:` or `-`: inline, a block scalar or a child."""
        header = _BLOCK_HEADER.fullmatch(rest)
        if header:
            return self.block_scalar(indent, header.group(1), header.group(2))
        if rest:
            return _scalar(number, rest)
        child = self.peek()
        if child is None or child.indent <= indent:
            return None
        return self.node(child.indent)

    def block_scalar(self, indent: int, style: str, chomp: str) -> str:
        lines: list[str] = []
        block_indent: int | None = None
        while self._index < len(self._raw):
            raw = self._raw[self._index]
            if raw.strip():
                current = len(raw) - len(raw.lstrip(" "))
                if current <= indent:
                    break
                if block_indent is None:
                    block_indent = current
                if current < block_indent:
                    raise YamlSubsetError(self._index + 1, "block is under-indented")
                lines.append(raw[block_indent:])
            else:
                lines.append("")
            self._index += 1
        while lines and not lines[-1]:
            lines.pop()
        body = "\n".join(lines) if style == "|" else _fold(lines)
        return body if chomp == "-" or not body else body + "\n"


def _is_item(text: str) -> bool:
    return text == "-" or text.startswith("- ")


def _split_key(number: int, text: str) -> tuple[str, str]:
    match = _KEY.match(text)
    if not match:
        raise YamlSubsetError(number, f"expected 'key: value', got {text!r}")
    raw_key = match.group(1)
    key = _scalar(number, raw_key) if raw_key[0] in "'\"" else raw_key
    return str(key), text[match.end() :].strip()


def _fold(lines: list[str]) -> str:
    """Folded style: lines of a paragraph joined by spaces, blank lines kept."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in lines:
        if line.startswith(" "):
            raise YamlSubsetError(0, "more-indented lines in '>' are not supported")
        if line:
            current.append(line)
        else:
            paragraphs.append(" ".join(current))
            current = []
    paragraphs.append(" ".join(current))
    return "\n".join(paragraphs)


def _scalar(number: int, text: str) -> Any:
    if text.startswith("'"):
        if len(text) < 2 or not text.endswith("'"):
            raise YamlSubsetError(number, "unterminated single-quoted scalar")
        inner = text[1:-1]
        if re.search(r"(?<!')'(?!')", inner.replace("''", "")):
            raise YamlSubsetError(number, "stray quote in single-quoted scalar")
        return inner.replace("''", "'")
    if text.startswith('"'):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise YamlSubsetError(number, f"bad double-quoted scalar: {exc}") from exc
        if not isinstance(value, str):
            raise YamlSubsetError(number, "bad double-quoted scalar")
        return value
    if text.startswith("["):
        return _flow_list(number, text)
    if text == "{}":
        return {}
    if text.startswith(_UNSUPPORTED_START):
        raise YamlSubsetError(number, f"unsupported YAML syntax in {text!r}")
    if " #" in text or ": " in text or text.endswith(":"):
        raise YamlSubsetError(number, f"ambiguous plain scalar {text!r}; quote it")
    return _plain(text)


def _flow_list(number: int, text: str) -> list[Any]:
    if not text.endswith("]"):
        raise YamlSubsetError(number, "a [...] list must end on its own line")
    inner = text[1:-1].strip()
    if not inner:
        return []
    if any(c in inner for c in "[]{}\"'"):
        # Quoted items are allowed only when they hold no commas.
        items = [part.strip() for part in inner.split(",")]
        if any(c in item for item in items for c in "[]{}"):
            raise YamlSubsetError(number, "nested flow collections are unsupported")
        return [_scalar(number, item) for item in items]
    return [_scalar(number, part.strip()) for part in inner.split(",")]


def _plain(text: str) -> Any:
    if text in _NULLS:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text
