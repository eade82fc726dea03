"""IOC values compared the way Defender stores them, and found by value.

Defender's ``$filter`` compares ``indicatorValue`` as a literal string, while
callers name the same IOC in several spellings. `normalise` gives the one
spelling this app uses to decide that two values are the same indicator
value; `variants` lists the literal spellings worth asking Defender for;
`resolve_values` finds every indicator that carries each requested value.

Equality rules (`normalise`), applied after trimming leading and trailing
whitespace (interior whitespace is kept):

- Hashes (``FileSha1``, ``FileSha256``, ``FileMd5``,
  ``CertificateThumbprint``): lower-cased, so hex compares case-insensitively.
- ``DomainName``: lower-cased, and one trailing dot removed
  (``Evil.COM.`` equals ``evil.com``). No IDNA conversion is made: a Unicode
  name and its ``xn--`` (punycode) form are different values, because
  Defender keeps whichever spelling it was given.
- ``IpAddress``: the `ipaddress` module's form, so IPv6 is compressed and
  lower-cased (``2001:DB8:0::1`` equals ``2001:db8::1``). An IPv4 address
  written with a leading zero in any octet (``010.0.0.1``) is ambiguous (octal
  for some parsers, decimal for others), so it is not interpreted: it is kept
  as trimmed text and equals only the same text. Anything else `ipaddress`
  rejects (CIDR ranges, bracketed IPv6) is kept as trimmed text too.
- ``Url`` with a scheme: scheme and host lower-cased, one trailing dot on the
  host removed, an IP host written in `ipaddress` form, the default port
  (80 for http, 443 for https, 21 for ftp) dropped, an empty path written
  ``/``, and an empty query or fragment dropped. User info, path, query and
  fragment keep their case. A URL that does not parse (a bad port, tabs or
  line breaks inside) is kept as trimmed text.
- ``Url`` without a scheme (``evil.com/a``): the host part, up to the first
  ``/``, ``?`` or ``#``, is lower-cased and loses one trailing dot; an empty
  path is written ``/``.

Not equal, on purpose: ``http`` and ``https`` forms of a URL; a URL with and
without a scheme; a non-root path with and without a trailing slash
(``/a`` and ``/a/``); different path case or percent-encoding (``%7E`` and
``~``); a domain and its ``www.`` or other sub-domains; an IPv4 address and its
IPv4-mapped IPv6 form; a thumbprint written with colons or spaces and the bare
hex; values of different indicator types whenever a type is given.

Without a type, one is inferred: 32, 40 or 64 hex digits are a hash, a value
shaped like an IPv4 or IPv6 address (or a CIDR range of one) is an
``IpAddress``, a value with a ``scheme://`` or another ``/`` is a ``Url``,
anything else is a ``DomainName``.

`resolve_values` matches an indicator to a requested value when their
normalised forms are equal under the indicator's own type (and that type is
the requested one, when a type is given). It finds candidates either with
``indicatorValue in (...)`` filters built from `variants` (one List call per
filter), or, when that would take more calls than listing the tenant, with
one full listing matched locally. A filter only finds spellings among the
variants; the full listing finds every spelling that normalises equal.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import SplitResult, urlsplit

__all__ = [
    "FULL_LISTING_CALLS",
    "HASH_TYPES",
    "INDICATOR_TYPES",
    "LIST_PAGE_SIZE",
    "MAX_ACTIVE_INDICATORS",
    "MAX_FILTER_CHARS",
    "MAX_VALUES_PER_FILTER",
    "IndicatorLister",
    "Resolution",
    "infer_type",
    "normalise",
    "odata_in",
    "odata_quote",
    "resolve_values",
    "value_filters",
    "variants",
]

HASH_TYPES = ("FileSha1", "FileSha256", "FileMd5", "CertificateThumbprint")
IP_TYPE = "IpAddress"
DOMAIN_TYPE = "DomainName"
URL_TYPE = "Url"
INDICATOR_TYPES = (*HASH_TYPES, IP_TYPE, DOMAIN_TYPE, URL_TYPE)

# Public guidance for `indicatorValue in (...)`: about 6 values and 5,000
# characters per query.
MAX_VALUES_PER_FILTER = 6
MAX_FILTER_CHARS = 5_000
# The largest `$top` Defender accepts, and its tenant cap on active indicators.
LIST_PAGE_SIZE = 10_000
MAX_ACTIVE_INDICATORS = 15_000
# List calls a full listing of a tenant at the cap takes.
FULL_LISTING_CALLS = math.ceil(MAX_ACTIVE_INDICATORS / LIST_PAGE_SIZE)

_HASH_LENGTHS = {32: "FileMd5", 40: "FileSha1", 64: "FileSha256"}
_HEX = re.compile(r"[0-9A-Fa-f]+")
_DOTTED_QUAD = re.compile(r"[0-9]+(?:\.[0-9]+){3}")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}
_URL_CONTROL_CHARS = frozenset("\t\r\n")
_HOST_END = re.compile(r"[/?#]")
_VALUE_FIELD = "indicatorValue"
_TYPE_FIELD = "indicatorType"


class IndicatorLister(Protocol):
    """What this module needs from a Defender client: the List call."""

    def list_indicators(
        self, *, odata_filter: str | None = ..., page_size: int = ...
    ) -> Iterator[dict[str, Any]]: ...


@dataclass(frozen=True)
class Resolution:
    """Which indicators carry each requested value.

    `matches` maps each requested value, as given, that matched to its
    indicators in ID order; `unmatched` lists, in request order, the values
    no indicator carries; `full_listing` tells whether the whole tenant was
    listed instead of filtered.
    """

    matches: dict[str, list[dict[str, Any]]]
    unmatched: list[str]
    full_listing: bool = False

    def ids(self) -> list[int]:
        """Every matched indicator ID once, ascending."""
        rows = (row for found in self.matches.values() for row in found)
        return sorted({int(row["id"]) for row in rows})


def infer_type(value: str) -> str:
    """The indicator type a bare value most likely has (see module doc)."""
    text = value.strip()
    if len(text) in _HASH_LENGTHS and _HEX.fullmatch(text):
        return _HASH_LENGTHS[len(text)]
    if _looks_like_ip(text):
        return IP_TYPE
    if _SCHEME.match(text) or "/" in text:
        return URL_TYPE
    return DOMAIN_TYPE


def normalise(value: str, indicator_type: str | None = None) -> str:
    """The canonical spelling of `value`; raises ValueError when blank or
    when `indicator_type` is not one of `INDICATOR_TYPES`."""
    text, kind = _prepared(value, indicator_type)
    if kind in HASH_TYPES:
        return text.lower()
    if kind == IP_TYPE:
        return _ip(text)
    if kind == DOMAIN_TYPE:
        return _without_trailing_dot(text.lower())
    return _url(text)


def variants(value: str, indicator_type: str | None = None) -> list[str]:
    """Literal spellings Defender may hold for `value`, canonical first.

    Every spelling normalises to the same canonical form under the type
    (given or inferred); without a type, every spelling infers that type too.
    """
    text, kind = _prepared(value, indicator_type)
    canonical = normalise(text, kind)
    spellings = [canonical, text]
    if kind in HASH_TYPES:
        spellings.append(canonical.upper())
    elif kind == DOMAIN_TYPE:
        bare = _without_trailing_dot(text)
        spellings += [canonical + ".", bare, bare + "."]
    elif kind == URL_TYPE:
        spellings += _slash_spellings(canonical)
    elif kind == IP_TYPE:
        spellings += _ip_spellings(canonical)
    same = [s for s in spellings if _same_value(s, kind, canonical)]
    if indicator_type is None:
        # Without a type, a spelling that reads as another type is left out,
        # so that values of different inferred types never share a literal.
        same = [s for s in same if infer_type(s) == kind]
    return list(dict.fromkeys(same))


def odata_quote(text: str) -> str:
    """`text` as an OData string literal: single-quoted, quotes doubled."""
    return "'" + text.replace("'", "''") + "'"


def odata_in(field_name: str, literals: Iterable[str]) -> str:
    """``field in ('a','b')`` for the given literal strings."""
    return f"{field_name} in ({','.join(odata_quote(s) for s in literals)})"


def value_filters(values: Sequence[str], indicator_type: str | None) -> list[str]:
    """``$filter`` texts that together ask for every value's variants.

    Each filter holds the variants of at most `MAX_VALUES_PER_FILTER` values
    and at most `MAX_FILTER_CHARS` characters; values equal under `normalise`
    count once, and no literal is asked for twice. Raises ValueError for a
    blank value, an unknown type, or a value too long to fit a filter alone.
    """
    suffix = "" if indicator_type is None else _type_clause(indicator_type)
    groups = _variant_groups(values, indicator_type)
    filters: list[str] = []
    chunk: list[list[str]] = []
    for group in groups:
        group = _fitting(group, suffix)
        if chunk and not _fits([*chunk, group], suffix):
            filters.append(_filter_text(chunk, suffix))
            chunk = []
        chunk.append(group)
    if chunk:
        filters.append(_filter_text(chunk, suffix))
    return filters


def resolve_values(
    client: IndicatorLister,
    values: Sequence[str],
    indicator_type: str | None = None,
    *,
    full_listing_threshold: int = FULL_LISTING_CALLS,
) -> Resolution:
    """Find every indicator carrying each value.

    When the filters `value_filters` builds would take more List calls than
    `full_listing_threshold` (by default what listing a tenant at the cap
    takes), the tenant is listed once instead and matched locally. Raises
    ValueError for a blank value or an unknown type, and whatever the
    client raises.
    """
    requested = list(dict.fromkeys(values))
    index = _RequestIndex(requested, indicator_type)
    filters = value_filters(requested, indicator_type)

    full = len(filters) > full_listing_threshold
    if full:
        odata = None if indicator_type is None else _type_filter(indicator_type)
        rows: Iterable[dict[str, Any]] = client.list_indicators(
            odata_filter=odata, page_size=LIST_PAGE_SIZE
        )
    else:
        rows = _filtered_rows(client, filters)
    found = index.match(rows)

    matches = {
        value: [found[value][i] for i in sorted(found[value])]
        for value in requested
        if value in found
    }
    unmatched = [value for value in requested if value not in found]
    return Resolution(matches, unmatched, full)


class _RequestIndex:
    """Requested values by their canonical spelling under each type."""

    def __init__(self, requested: Sequence[str], indicator_type: str | None) -> None:
        kinds = INDICATOR_TYPES if indicator_type is None else (indicator_type,)
        self._by_type: dict[str, dict[str, list[str]]] = {}
        for kind in kinds:
            by_value = self._by_type.setdefault(kind, {})
            for value in requested:
                by_value.setdefault(normalise(value, kind), []).append(value)

    def match(self, rows: Iterable[dict[str, Any]]) -> dict[str, dict[int, Any]]:
        found: dict[str, dict[int, Any]] = {}
        for row in rows:
            row_id = str(row.get("id", "")).strip()
            if not row_id.isdigit():
                continue
            for value in self._requests_for(row):
                found.setdefault(value, {})[int(row_id)] = row
        return found

    def _requests_for(self, row: dict[str, Any]) -> list[str]:
        kind, value = row.get(_TYPE_FIELD), row.get(_VALUE_FIELD)
        if not isinstance(value, str) or not value.strip():
            return []
        if not isinstance(kind, str) or kind not in self._by_type:
            return []
        return self._by_type[kind].get(normalise(value, kind), [])


def _filtered_rows(
    client: IndicatorLister, filters: Sequence[str]
) -> Iterator[dict[str, Any]]:
    seen: set[str] = set()
    for odata in filters:
        for row in client.list_indicators(odata_filter=odata, page_size=LIST_PAGE_SIZE):
            row_id = str(row.get("id"))
            if row_id not in seen:
                seen.add(row_id)
                yield row


def _same_value(spelling: str, kind: str, canonical: str) -> bool:
    if not spelling or spelling.strip() != spelling:
        return False
    return normalise(spelling, kind) == canonical


def _prepared(value: str, indicator_type: str | None) -> tuple[str, str]:
    text = value.strip()
    if not text:
        raise ValueError("an indicator value must not be blank")
    kind = infer_type(text) if indicator_type is None else indicator_type
    if kind not in INDICATOR_TYPES:
        raise ValueError(f"unknown indicator type {kind!r}")
    return text, kind


def _looks_like_ip(text: str) -> bool:
    address, slash, prefix = text.partition("/")
    if slash:
        # A CIDR range is IP-shaped, although `normalise` keeps it as text.
        return prefix.isdigit() and _looks_like_ip(address)
    if _DOTTED_QUAD.fullmatch(text):
        return True
    if ":" not in text or "/" in text:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def _ip_spellings(canonical: str) -> list[str]:
    try:
        address = ipaddress.ip_address(canonical)
    except ValueError:
        return []
    if address.version == 4:
        return []
    return [address.exploded, canonical.upper()]


def _without_trailing_dot(text: str) -> str:
    return text[:-1] if len(text) > 1 and text.endswith(".") else text


def _url(text: str) -> str:
    if not _SCHEME.match(text):
        return _schemeless_url(text)
    if _URL_CONTROL_CHARS.intersection(text):
        return text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    if parts.hostname is None:
        return text
    return _joined(parts, _netloc(parts, port))


def _netloc(parts: SplitResult, port: int | None) -> str:
    host = _host(parts.hostname or "")
    userinfo, at, _ = parts.netloc.rpartition("@")
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        return f"{userinfo}{at}{host}"
    return f"{userinfo}{at}{host}:{port}"


def _host(hostname: str) -> str:
    host = _without_trailing_dot(hostname)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    return f"[{address}]" if address.version == 6 else str(address)


def _joined(parts: SplitResult, netloc: str) -> str:
    url = f"{parts.scheme.lower()}://{netloc}{parts.path or '/'}"
    if parts.query:
        url += f"?{parts.query}"
    if parts.fragment:
        url += f"#{parts.fragment}"
    return url


def _schemeless_url(text: str) -> str:
    end = _HOST_END.search(text)
    cut = len(text) if end is None else end.start()
    host, rest = text[:cut], text[cut:]
    if not rest.startswith("/"):
        rest = "/" + rest
    return _without_trailing_dot(host.lower()) + rest


def _slash_spellings(canonical: str) -> list[str]:
    """The canonical URL without its "/" when the path is just the root."""
    if canonical.endswith("/") and canonical.count("/") == 3 and "?" not in canonical:
        return [canonical[:-1]]
    if "://" not in canonical and canonical.endswith("/") and canonical.count("/") == 1:
        return [canonical[:-1]]
    return []


def _type_clause(indicator_type: str) -> str:
    if indicator_type not in INDICATOR_TYPES:
        raise ValueError(f"unknown indicator type {indicator_type!r}")
    return f" and {_type_filter(indicator_type)}"


def _type_filter(indicator_type: str) -> str:
    return f"{_TYPE_FIELD} eq {odata_quote(indicator_type)}"


def _variant_groups(
    values: Sequence[str], indicator_type: str | None
) -> list[list[str]]:
    """Variants per distinct value, canonical first; no literal twice."""
    groups: dict[tuple[str, str], list[str]] = {}
    for value in values:
        text, kind = _prepared(value, indicator_type)
        spellings = variants(text, kind)
        groups.setdefault((kind, spellings[0]), []).extend(spellings)
    placed: set[str] = set()
    unique: list[list[str]] = []
    for spellings in groups.values():
        fresh = [s for s in dict.fromkeys(spellings) if s not in placed]
        placed.update(fresh)
        if fresh:
            unique.append(fresh)
    return unique


def _filter_text(chunk: Sequence[Sequence[str]], suffix: str) -> str:
    literals = [literal for group in chunk for literal in group]
    return odata_in(_VALUE_FIELD, literals) + suffix


def _fits(chunk: Sequence[Sequence[str]], suffix: str) -> bool:
    if len(chunk) > MAX_VALUES_PER_FILTER:
        return False
    return len(_filter_text(chunk, suffix)) <= MAX_FILTER_CHARS


def _fitting(group: list[str], suffix: str) -> list[str]:
    """The group's leading variants that fit one filter; canonical first."""
    for size in range(len(group), 0, -1):
        if _fits([group[:size]], suffix):
            return group[:size]
    raise ValueError(
        f"a value of {len(group[0])} characters does not fit one "
        f"{MAX_FILTER_CHARS}-character filter"
    )
