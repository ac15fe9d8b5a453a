"""Reverse-IP lookup: a chain of resolvers, first match wins, with a cache.

(Interface fixed here; implementation in progress.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
