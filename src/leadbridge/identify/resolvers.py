"""Reverse-IP lookup: which organisation, and which country, is behind an IP address.

A chain of resolvers is asked in order and the first that names an organisation wins; the
customer's own CSV of IP ranges goes first, MaxMind-format databases after it. Answers are
cached, because the same addresses come back again and again.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import socket
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import maxminddb
from maxminddb.types import Record

from leadbridge.config import IdentifySettings
from leadbridge.errors import ConfigError, InputError
from leadbridge.identify.classify import (
    ORGANISATION_TYPES,
    classify_organisation,
    domain_key,
    name_key,
)
from leadbridge.identify.csvfile import named, open_table

log = logging.getLogger(__name__)

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class OrgMatch:
    """The organisation a resolver found behind an IP address."""

    key: str  # stable per organisation and resolver: "asn:15169", "range:acme.com"
    name: str
    domain: str | None
    type: str  # company | isp | hosting | education | government
    confidence: float  # 0..1
    source: str  # resolver name, e.g. "csv:ranges.csv", "mmdb:GeoLite2-ASN.mmdb"
    asn: int | None = None


@dataclass(frozen=True, slots=True)
class IpInfo:
    org: OrgMatch | None
    country: str | None  # ISO 3166-1 alpha-2, upper case


class Resolver(Protocol):
    name: str

    def lookup(self, ip: str) -> IpInfo | None: ...


# -- MaxMind-format databases ------------------------------------------------------------------

# Types as databases (ipinfo) and people write them; "business" is our "company".
_TYPE_NAMES = {**{t: t for t in ORGANISATION_TYPES}, "business": "company"}
_TYPED_CONFIDENCE = 0.8  # the database itself says what kind of organisation this is
_HOLDER_CONFIDENCE = 0.6  # the database names the holder of the block, not only its network
_ASN_CONFIDENCE = 0.5  # only the network's owner is known
KEY_LENGTH = 300  # organisation_keys.match_key
NAME_LENGTH = 300  # organisations.name
_ASN_TEXT = re.compile(r"\s*(?:AS)?(\d+)\s*", re.IGNORECASE)


class MmdbResolver:
    """Reads any MaxMind-format database: GeoLite2/GeoIP2 ASN, Country, City, ipinfo, others.

    ASN records give the network's owner (keyed `asn:<n>`); records naming a company or
    organisation give that holder (keyed `mmdb:<name>`); country databases give a country.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.name = f"mmdb:{self.path.name}"
        try:
            try:
                self._reader = maxminddb.open_database(self.path, maxminddb.MODE_MMAP_EXT)
            except ValueError:  # the C extension is not installed: slower, but still right
                log.warning("maxminddb C extension unavailable; %s is read in pure Python", path)
                self._reader = maxminddb.open_database(self.path, maxminddb.MODE_AUTO)
        except FileNotFoundError as exc:
            raise InputError(f"{self.path}: no such IP database file") from exc
        except (OSError, maxminddb.InvalidDatabaseError, ValueError) as exc:
            raise InputError(f"{self.path}: not a readable MaxMind-format database: {exc}") from exc

    @property
    def uses_c_extension(self) -> bool:
        """True when lookups go through maxminddb's C extension (about 15 times faster)."""
        return type(self._reader).__module__ == "maxminddb.extension"

    def lookup(self, ip: str) -> IpInfo | None:
        """What the database knows of `ip`; None when nothing (or `ip` is no address)."""
        try:
            record = self._reader.get(ip)
        except ValueError:  # not an IP address, or IPv6 in an IPv4-only database
            return None
        if not isinstance(record, dict):
            return None
        org = self._organisation(record)
        country = _country(record)
        return IpInfo(org, country) if org or country else None

    def close(self) -> None:
        self._reader.close()

    def _organisation(self, record: Mapping[str, Record]) -> OrgMatch | None:
        asn = _asn(record)
        holder = _text(record, "company", "organization", "organisation")
        plain_name = _text(record, "name")
        as_name = _text(record, "autonomous_system_organization", "as_name")
        # A record naming both a holder and the AS is about the holder, which the AS key
        # would wrongly share with every other customer of that network.
        if holder or (plain_name and as_name):
            name = holder or plain_name
            domain = _domain(_text(record, "domain"))
            key, base = None, _HOLDER_CONFIDENCE
        else:
            name = plain_name or as_name or _text(record, "isp")
            domain = _domain(_text(record, "domain", "as_domain"))
            key = f"asn:{asn}" if asn is not None else None
            base = _ASN_CONFIDENCE
        if not name:
            return None
        key = key or f"mmdb:{name_key(name)}"[:KEY_LENGTH]
        record_type = _TYPE_NAMES.get((_text(record, "type") or "").lower())
        if record_type:
            org_type, confidence = record_type, _TYPED_CONFIDENCE
        else:
            org_type, type_confidence = classify_organisation(name, domain)
            confidence = min(base, type_confidence)
        return OrgMatch(key, name[:NAME_LENGTH], domain, org_type, confidence, self.name, asn)


def _text(record: Mapping[str, Record], *fields: str) -> str | None:
    for field in fields:
        value = record.get(field)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _asn(record: Mapping[str, Record]) -> int | None:
    for field in ("autonomous_system_number", "asn"):
        value = record.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and (m := _ASN_TEXT.fullmatch(value)):
            return int(m.group(1))
    return None


def _country(record: Mapping[str, Record]) -> str | None:
    """ISO code from `country_code`, `country` ("US" or {"iso_code": "US"}), else where the
    block is registered."""
    for field in ("country_code", "country", "registered_country"):
        value = record.get(field)
        if isinstance(value, dict):
            value = value.get("iso_code")
        if isinstance(value, str) and len(value) == 2 and value.isalpha():
            return value.upper()
    return None


def _domain(text: str | None) -> str | None:
    """A database's domain, tidied; one that is not a domain name is dropped, not an error."""
    try:
        return domain_key(text)
    except ValueError:
        return None


# -- the customer's CSV of IP ranges -----------------------------------------------------------

RANGE_COLUMNS = ("network", "company", "domain", "type")


@dataclass(frozen=True, slots=True)
class IpRange:
    """One row of the customer's ranges file: a network and the organisation using it."""

    network: IpNetwork
    company: str
    domain: str | None
    type: str
    line: int

    @property
    def key(self) -> str:
        return f"range:{self.domain or name_key(self.company)}"[:KEY_LENGTH]


def load_ranges(path: Path | str) -> tuple[list[IpRange], list[InputError]]:
    """Read a `network,company,domain,type` CSV: the good rows, and one error per bad row.

    A file that cannot be read at all (missing, not UTF-8, no such columns) raises InputError.
    """
    path = Path(path)
    ranges: list[IpRange] = []
    errors: list[InputError] = []
    seen: dict[IpNetwork, int] = {}
    for line, row in _read_rows(path, required=("network", "company")):
        try:
            found = _parse_range(row, line)
            if found.network in seen:
                raise ValueError(f"network {found.network} is already given on line "
                                 f"{seen[found.network]}")
        except ValueError as exc:
            errors.append(InputError(f"{path}: line {line}: {exc}"))
            continue
        seen[found.network] = line
        ranges.append(found)
    return ranges, errors


class CsvRangeResolver:
    """The customer's own list of which company uses which IP networks; most specific wins.

    Bad rows are skipped and kept in `errors` (or raised at once with `strict=True`).
    """

    def __init__(self, path: Path | str, *, strict: bool = False) -> None:
        self.path = Path(path)
        self.name = f"csv:{self.path.name}"
        self.ranges, self.errors = load_ranges(self.path)
        if strict and self.errors:
            raise self.errors[0]
        self._v4 = _RangeTable(self._matches(r) for r in self.ranges if r.network.version == 4)
        self._v6 = _RangeTable(self._matches(r) for r in self.ranges if r.network.version == 6)

    def lookup(self, ip: str) -> IpInfo | None:
        """The customer's organisation using `ip`, if a listed network holds it."""
        packed = _packed_ip(ip)
        if packed is None:
            return None
        table = self._v4 if len(packed) == 4 else self._v6
        org = table.find(int.from_bytes(packed, "big"))
        return IpInfo(org, None) if org else None

    def _matches(self, found: IpRange) -> tuple[IpNetwork, OrgMatch]:
        org = OrgMatch(found.key, found.company, found.domain, found.type, 1.0, self.name)
        return found.network, org


class _RangeTable:
    """Networks flattened into sorted, non-overlapping spans, so a lookup is one bisect.

    CIDR networks are either nested or apart; a nested network cuts a span out of the one
    around it, which makes the most specific network own each address.
    """

    def __init__(self, networks: Iterable[tuple[IpNetwork, OrgMatch]]) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.owners: list[OrgMatch] = []
        spans = sorted(
            ((int(n.network_address), int(n.broadcast_address), org) for n, org in networks),
            key=lambda span: (span[0], -span[1]),  # outer networks before the ones inside
        )
        open_spans: list[tuple[int, int, OrgMatch]] = []
        cursor = 0
        for first, last, org in spans:
            while open_spans and open_spans[-1][1] < first:
                cursor = self._close(cursor, open_spans.pop())
            if open_spans:
                self._add(cursor, first - 1, open_spans[-1][2])
            open_spans.append((first, last, org))
            cursor = first
        while open_spans:
            cursor = self._close(cursor, open_spans.pop())

    def _close(self, cursor: int, span: tuple[int, int, OrgMatch]) -> int:
        """Give the rest of an enclosing span, from `cursor` on, to its owner."""
        self._add(cursor, span[1], span[2])
        return span[1] + 1

    def _add(self, first: int, last: int, owner: OrgMatch) -> None:
        if first <= last:
            self.starts.append(first)
            self.ends.append(last)
            self.owners.append(owner)

    def find(self, address: int) -> OrgMatch | None:
        i = bisect_right(self.starts, address) - 1
        return self.owners[i] if i >= 0 and address <= self.ends[i] else None


def _parse_range(row: dict[str, str], line: int) -> IpRange:
    if row.get(""):
        raise ValueError(row[""])
    text = row["network"]
    try:
        network = ipaddress.ip_network(text)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"network {text!r} is not an IPv4 or IPv6 CIDR network "
                             "such as 203.0.113.0/24") from exc
        raise ValueError(f"network {text!r} has host bits set; did you mean {loose}?") from exc
    company = row["company"]
    if not company:
        raise ValueError("company is empty")
    if len(company) > NAME_LENGTH:
        raise ValueError(f"company name is longer than {NAME_LENGTH} characters")
    if not name_key(company):
        raise ValueError(f"company {company!r} has no letters or digits")
    try:
        domain = domain_key(row.get("domain"))
    except ValueError as exc:
        raise ValueError(f"domain {exc}") from exc
    kind = (row.get("type") or "company").lower()
    if kind not in _TYPE_NAMES:
        raise ValueError(f"unknown type {kind!r}; use one of {', '.join(ORGANISATION_TYPES)}")
    return IpRange(network, company, domain, _TYPE_NAMES[kind], line)


def _read_rows(path: Path, required: Sequence[str]) -> Iterable[tuple[int, dict[str, str]]]:
    """(line number, row) for each non-blank row of a UTF-8 CSV, comma or semicolon separated.

    Values are stripped and a short row reads as blanks. A row with more values than the
    header has columns comes back with the problem under the key `""`.
    """
    header, rows = open_table(path)
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"{path}: the first line must name the columns "
                         f"{', '.join(RANGE_COLUMNS)}; missing {', '.join(missing)}")
    for line, cells in rows:
        row = named(header, cells)
        if len(cells) > len(header):
            row[""] = f"the row has {len(cells)} values but the header names {len(header)} columns"
        yield line, row


# -- the chain ---------------------------------------------------------------------------------

_NOTHING = IpInfo(None, None)


class ResolverChain:
    """Asks each resolver in turn; the first organisation and the first country found win.

    Answers, including "nothing known" and invalid addresses, are kept in a bounded LRU cache
    (`cache_size` entries; 0 turns caching off).
    """

    def __init__(self, resolvers: Sequence[Resolver], cache_size: int = 200_000) -> None:
        self.resolvers = tuple(resolvers)
        self._cached_lookup = functools.lru_cache(maxsize=cache_size)(self._lookup)

    def lookup(self, ip: str) -> IpInfo:
        """Organisation and country behind `ip`; `IpInfo(None, None)` when unknown or invalid."""
        return self._cached_lookup(ip)

    def cache_info(self) -> functools._CacheInfo:
        return self._cached_lookup.cache_info()

    def clear_cache(self) -> None:
        self._cached_lookup.cache_clear()

    def close(self) -> None:
        for resolver in self.resolvers:
            if isinstance(resolver, MmdbResolver):
                resolver.close()

    def _lookup(self, ip: str) -> IpInfo:
        packed = _packed_ip(ip)
        if packed is None:
            return _NOTHING
        text = socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)
        org: OrgMatch | None = None
        country: str | None = None
        for resolver in self.resolvers:
            info = resolver.lookup(text)
            if info is None:
                continue
            org = org or info.org
            country = country or info.country
            if org and country:
                break
        return IpInfo(org, country) if org or country else _NOTHING


_IPV4_MAPPED = bytes(10) + b"\xff\xff"


def _packed_ip(ip: str) -> bytes | None:
    """The 4 or 16 bytes of an IP address (IPv4-mapped IPv6 gives its IPv4); None if not one.

    `inet_pton` reads an address several times faster than `ipaddress`, on the hot path.
    """
    text = ip.strip()
    try:
        if ":" not in text:
            return socket.inet_pton(socket.AF_INET, text)
        packed = socket.inet_pton(socket.AF_INET6, text)
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return None
    return packed[12:] if packed[:12] == _IPV4_MAPPED else packed


def build_chain(settings: IdentifySettings) -> ResolverChain:
    """The chain the settings describe: the customer's ranges CSV first, then each database.

    Bad rows of the ranges CSV are logged and skipped; a file that cannot be read at all is
    a ConfigError naming the setting.
    """
    resolvers: list[Resolver] = []
    if settings.ip_ranges_csv is not None:
        try:
            ranges = CsvRangeResolver(settings.ip_ranges_csv)
        except InputError as exc:
            raise ConfigError(f"identify.ip_ranges_csv: {exc}") from exc
        for error in ranges.errors:
            log.warning("IP ranges row skipped: %s", error)
        resolvers.append(ranges)
    for path in settings.mmdb:
        try:
            resolvers.append(MmdbResolver(path))
        except InputError as exc:
            raise ConfigError(f"identify.mmdb: {exc}") from exc
    return ResolverChain(resolvers, settings.cache_size)
