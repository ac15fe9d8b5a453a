"""Reverse-IP resolvers against small real MaxMind-format databases and CSV files."""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path
from typing import Any

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from leadbridge.config import IdentifySettings
from leadbridge.errors import ConfigError, InputError
from leadbridge.identify.resolvers import (
    CsvRangeResolver,
    IpInfo,
    MmdbResolver,
    OrgMatch,
    ResolverChain,
    build_chain,
    load_ranges,
)


def write_mmdb(
    path: Path, database_type: str, records: dict[str, dict[str, Any]], ip_version: int = 6
) -> Path:
    writer = MMDBWriter(
        ip_version=ip_version, database_type=database_type, ipv4_compatible=ip_version == 6
    )
    for network, record in records.items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def asn_db(tmp_path: Path) -> Path:
    """Shaped like GeoLite2-ASN."""
    google = {"autonomous_system_number": 15169, "autonomous_system_organization": "GOOGLE"}
    comcast = {"autonomous_system_number": 7922, "autonomous_system_organization": "COMCAST-7922"}
    return write_mmdb(
        tmp_path / "GeoLite2-ASN.mmdb",
        "GeoLite2-ASN",
        {"8.8.8.0/24": google, "2001:4860::/32": google, "73.0.0.0/8": comcast},
    )


@pytest.fixture
def ipinfo_db(tmp_path: Path) -> Path:
    """Shaped like ipinfo's ASN database (name/domain/type) and its Lite one (as_*, country)."""
    return write_mmdb(
        tmp_path / "ipinfo.mmdb",
        "ipinfo asn.mmdb",
        {
            "8.8.8.0/24": {"asn": "AS15169", "name": "Google LLC", "domain": "google.com",
                           "type": "hosting", "route": "8.8.8.0/24"},
            "198.51.100.0/24": {"asn": "AS64500", "name": "Globex Logistics",
                                "domain": "globex.example", "type": "business"},
            "192.0.2.0/24": {"asn": "AS64501", "as_name": "Springfield University",
                             "as_domain": "springfield.edu", "country_code": "US",
                             "country": "United States"},
            "2001:db8::/32": {"asn": "AS64502", "name": "Initech", "domain": "initech.example",
                              "type": "business", "country": "DE"},
        },
    )


@pytest.fixture
def country_db(tmp_path: Path) -> Path:
    """Shaped like GeoLite2-Country: a country, no organisation."""
    return write_mmdb(
        tmp_path / "GeoLite2-Country.mmdb",
        "GeoLite2-Country",
        {
            "8.8.8.0/24": {"country": {"iso_code": "US", "names": {"en": "United States"}}},
            "203.0.113.0/24": {"country": {"iso_code": "DE", "names": {"en": "Germany"}}},
            "2001:db8::/32": {"registered_country": {"iso_code": "nl"}},
        },
    )


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


RANGES = """network,company,domain,type
203.0.113.0/24,Acme Manufacturing,acme.example,
203.0.113.128/25,Acme Research Lab,research.acme.example,company
203.0.113.200/32,Acme CEO Office,,
198.51.100.0/24,Springfield University,springfield.edu,education
2001:db8:1::/48,Initech Software,initech.example,business
"""


# -- MaxMind-format databases ------------------------------------------------------------------


def test_geolite2_asn_record_gives_the_network_owner(asn_db: Path) -> None:
    resolver = MmdbResolver(asn_db)
    info = resolver.lookup("73.12.34.56")
    assert info == IpInfo(
        OrgMatch("asn:7922", "COMCAST-7922", None, "isp", 0.5, "mmdb:GeoLite2-ASN.mmdb", 7922),
        None,
    )
    google = resolver.lookup("8.8.8.8")
    assert google is not None and google.org is not None
    assert (google.org.key, google.org.type, google.org.asn) == ("asn:15169", "company", 15169)
    assert google.org.confidence <= 0.5


def test_ipv6_addresses_are_looked_up(asn_db: Path) -> None:
    info = MmdbResolver(asn_db).lookup("2001:4860:4860::8888")
    assert info is not None and info.org is not None and info.org.key == "asn:15169"


def test_mmdb_lookups_use_the_c_extension(asn_db: Path) -> None:
    assert MmdbResolver(asn_db).uses_c_extension


def test_ipinfo_record_type_is_trusted(ipinfo_db: Path) -> None:
    resolver = MmdbResolver(ipinfo_db)
    google = resolver.lookup("8.8.8.8")
    assert google is not None and google.org is not None
    assert google.org == OrgMatch(
        "asn:15169", "Google LLC", "google.com", "hosting", 0.8, "mmdb:ipinfo.mmdb", 15169
    )
    globex = resolver.lookup("198.51.100.7")
    assert globex is not None and globex.org is not None
    assert (globex.org.type, globex.org.domain, globex.org.confidence) == (
        "company", "globex.example", 0.8
    )


def test_ipinfo_lite_record_gives_as_name_domain_and_country(ipinfo_db: Path) -> None:
    info = MmdbResolver(ipinfo_db).lookup("192.0.2.10")
    assert info is not None and info.org is not None
    assert info.country == "US"  # country_code, not the country's name
    assert (info.org.name, info.org.domain, info.org.type) == (
        "Springfield University", "springfield.edu", "education"
    )
    v6 = MmdbResolver(ipinfo_db).lookup("2001:db8::1")
    assert v6 is not None and v6.country == "DE" and v6.org is not None
    assert v6.org.key == "asn:64502"


def test_country_database_gives_only_a_country(country_db: Path) -> None:
    resolver = MmdbResolver(country_db)
    assert resolver.lookup("203.0.113.9") == IpInfo(None, "DE")
    assert resolver.lookup("2001:db8::5") == IpInfo(None, "NL")
    assert resolver.lookup("10.0.0.1") is None


def test_generic_company_records_are_keyed_by_name(tmp_path: Path) -> None:
    path = write_mmdb(
        tmp_path / "vendor.mmdb",
        "Vendor-Company",
        {
            "203.0.113.0/24": {"company": "Acme Widgets, Inc.", "domain": "www.acme.example"},
            # an ISP-style record naming the customer that holds the block
            "73.0.0.0/16": {"autonomous_system_number": 7922,
                            "autonomous_system_organization": "COMCAST-7922",
                            "isp": "Comcast Cable", "organization": "Globex Logistics"},
        },
    )
    resolver = MmdbResolver(path)
    acme = resolver.lookup("203.0.113.1")
    assert acme is not None and acme.org is not None
    assert (acme.org.key, acme.org.domain, acme.org.type) == (
        "mmdb:acme widgets", "acme.example", "company"
    )
    globex = resolver.lookup("73.0.1.1")
    assert globex is not None and globex.org is not None
    assert (globex.org.key, globex.org.name, globex.org.asn) == (
        "mmdb:globex logistics", "Globex Logistics", 7922
    )


@pytest.mark.parametrize("ip", ["", "not-an-ip", "256.1.1.1", "8.8.8", "2001:::1"])
def test_mmdb_invalid_ip_finds_nothing(asn_db: Path, ip: str) -> None:
    assert MmdbResolver(asn_db).lookup(ip) is None


def test_ipv6_in_an_ipv4_only_database_finds_nothing(tmp_path: Path) -> None:
    path = write_mmdb(tmp_path / "v4.mmdb", "v4", {"8.8.8.0/24": {"company": "X"}}, ip_version=4)
    resolver = MmdbResolver(path)
    assert resolver.lookup("2001:4860::1") is None
    assert resolver.lookup("8.8.8.8") is not None


def test_missing_or_broken_database_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such IP database"):
        MmdbResolver(tmp_path / "absent.mmdb")
    junk = tmp_path / "junk.mmdb"
    junk.write_bytes(b"this is not a database" * 10)
    with pytest.raises(InputError, match=r"junk\.mmdb: not a readable MaxMind"):
        MmdbResolver(junk)


# -- CSV ranges ----------------------------------------------------------------------------------


def test_most_specific_range_wins(tmp_path: Path) -> None:
    resolver = CsvRangeResolver(write_csv(tmp_path / "ranges.csv", RANGES))
    assert resolver.errors == []

    def key(ip: str) -> str | None:
        info = resolver.lookup(ip)
        return info.org.key if info and info.org else None

    assert key("203.0.113.1") == "range:acme.example"
    assert key("203.0.113.128") == "range:research.acme.example"
    assert key("203.0.113.199") == "range:research.acme.example"
    assert key("203.0.113.200") == "range:acme ceo office"
    assert key("203.0.113.201") == "range:research.acme.example"
    assert key("203.0.114.0") is None
    assert key("198.51.100.255") == "range:springfield.edu"
    assert key("2001:db8:1:ffff::1") == "range:initech.example"
    assert key("2001:db8:2::1") is None
    assert key("garbage") is None


def test_range_match_is_sure_and_uses_the_given_type(tmp_path: Path) -> None:
    resolver = CsvRangeResolver(write_csv(tmp_path / "ranges.csv", RANGES))
    info = resolver.lookup("2001:db8:1::5")
    assert info == IpInfo(
        OrgMatch("range:initech.example", "Initech Software", "initech.example", "company", 1.0,
                 "csv:ranges.csv"),
        None,
    )
    uni = resolver.lookup("198.51.100.1")
    assert uni is not None and uni.org is not None and uni.org.type == "education"


BAD_RANGES = """network,company,domain,type
10.0.0.0/8,Good One,good.example,company
10.0.0.0/33,Bad Prefix,,
10.1.0.5/16,Host Bits,,
172.16.0.0/12,,empty.example,
192.168.0.0/16,Wrong Type,,partner
192.168.1.0/24,Bad Domain,not a domain,
10.0.0.0/8,Again,,
fd00::/8,Too Many,a.example,company,extra

2001:db8::/32,Good Two,,hosting
"""


def test_bad_rows_are_reported_with_file_and_line_and_good_rows_kept(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "ranges.csv", BAD_RANGES)
    ranges, errors = load_ranges(path)
    assert [(r.company, r.line) for r in ranges] == [("Good One", 2), ("Good Two", 11)]
    messages = [str(e) for e in errors]
    assert all(m.startswith(f"{path}: line ") for m in messages)
    expected = [
        ("line 3:", "'10.0.0.0/33' is not an IPv4 or IPv6 CIDR network"),
        ("line 4:", "has host bits set; did you mean 10.1.0.0/16?"),
        ("line 5:", "company is empty"),
        ("line 6:", "unknown type 'partner'"),
        ("line 7:", "domain 'not a domain' is not a domain name"),
        ("line 8:", "network 10.0.0.0/8 is already given on line 2"),
        ("line 9:", "the row has 5 values but the header names 4 columns"),
    ]
    assert len(messages) == len(expected)
    for message, (line, what) in zip(messages, expected, strict=True):
        assert line in message and what in message, message


def test_resolver_keeps_good_rows_unless_strict(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "ranges.csv", BAD_RANGES)
    lenient = CsvRangeResolver(path)
    assert len(lenient.errors) == 7
    assert lenient.lookup("10.200.0.1") is not None
    with pytest.raises(InputError, match=r"line 3: network '10\.0\.0\.0/33'"):
        CsvRangeResolver(path, strict=True)


def test_ranges_file_with_bom_and_semicolons(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", "Network;Company\r\n10.0.0.0/8;Acme\r\n", "utf-8-sig")
    ranges, errors = load_ranges(path)
    assert errors == [] and ranges[0].company == "Acme" and ranges[0].type == "company"


def test_unreadable_ranges_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_ranges(tmp_path / "absent.csv")
    with pytest.raises(InputError, match="missing company"):
        load_ranges(write_csv(tmp_path / "h.csv", "network,name\n10.0.0.0/8,Acme\n"))
    with pytest.raises(InputError, match="not UTF-8"):
        load_ranges(write_csv(tmp_path / "l.csv", "network,company\n10.0.0.0/8,Café\n", "latin-1"))


def test_range_lookup_agrees_with_a_linear_scan(tmp_path: Path) -> None:
    rng = random.Random(7)
    networks: set[ipaddress.IPv4Network] = set()
    while len(networks) < 300:
        prefix = rng.randint(8, 32)
        start = rng.randrange(2**32) >> (32 - prefix) << (32 - prefix)
        networks.add(ipaddress.IPv4Network((start, prefix)))
    lines = ["network,company"] + [f"{n},Org {i}" for i, n in enumerate(sorted(networks))]
    resolver = CsvRangeResolver(write_csv(tmp_path / "many.csv", "\n".join(lines)))
    assert resolver.errors == []
    by_company = {r.company: r.network for r in resolver.ranges}
    probes = [rng.randrange(2**32) for _ in range(2000)]
    probes += [int(n.network_address) for n in networks]
    probes += [int(n.broadcast_address) for n in networks]
    for value in probes:
        address = ipaddress.IPv4Address(value)
        containing = [n for n in networks if address in n]
        expected = max(containing, key=lambda n: n.prefixlen) if containing else None
        info = resolver.lookup(str(address))
        got = by_company[info.org.name] if info and info.org else None
        assert got == expected, address


# -- the chain -----------------------------------------------------------------------------------


class CountingResolver:
    """A resolver that answers from a dict and counts the questions."""

    def __init__(self, name: str, answers: dict[str, IpInfo]) -> None:
        self.name = name
        self.answers = answers
        self.asked: list[str] = []

    def lookup(self, ip: str) -> IpInfo | None:
        self.asked.append(ip)
        return self.answers.get(ip)


def _org(key: str) -> OrgMatch:
    return OrgMatch(key, key, None, "company", 1.0, "test")


def test_first_organisation_and_first_country_win() -> None:
    first = CountingResolver("a", {"192.0.2.1": IpInfo(_org("a"), None)})
    second = CountingResolver("b", {"192.0.2.1": IpInfo(_org("b"), "FR")})
    third = CountingResolver("c", {"192.0.2.1": IpInfo(None, "DE")})
    chain = ResolverChain([first, second, third])
    assert chain.lookup("192.0.2.1") == IpInfo(_org("a"), "FR")
    assert third.asked == []  # both answers found before the third


def test_invalid_ip_gives_nothing_without_asking() -> None:
    resolver = CountingResolver("a", {})
    chain = ResolverChain([resolver])
    for ip in ["", "  ", "nonsense", "1.2.3.4.5", "::g", "01.2.3.4", "1.2.3.4\x00", "fe80::1%eth0"]:
        assert chain.lookup(ip) == IpInfo(None, None)
    assert resolver.asked == []


def test_ipv4_mapped_ipv6_is_looked_up_as_ipv4(tmp_path: Path, asn_db: Path) -> None:
    chain = ResolverChain([CsvRangeResolver(write_csv(tmp_path / "r.csv", RANGES)),
                           MmdbResolver(asn_db)])
    info = chain.lookup("::ffff:203.0.113.5")
    assert info.org is not None and info.org.key == "range:acme.example"
    google = chain.lookup(" ::FFFF:808:808 ")
    assert google.org is not None and google.org.key == "asn:15169"


def test_answers_are_cached_and_the_cache_is_bounded() -> None:
    resolver = CountingResolver("a", {"192.0.2.1": IpInfo(_org("a"), None)})
    chain = ResolverChain([resolver], cache_size=2)
    for _ in range(3):
        assert chain.lookup("192.0.2.1").org == _org("a")
    assert resolver.asked == ["192.0.2.1"]
    chain.lookup("192.0.2.2")
    chain.lookup("192.0.2.3")
    assert chain.cache_info().currsize == 2
    chain.lookup("192.0.2.1")  # pushed out by the two newer addresses
    assert resolver.asked.count("192.0.2.1") == 2
    chain.clear_cache()
    assert chain.cache_info().currsize == 0


def test_cache_size_zero_asks_every_time() -> None:
    resolver = CountingResolver("a", {})
    chain = ResolverChain([resolver], cache_size=0)
    chain.lookup("192.0.2.1")
    chain.lookup("192.0.2.1")
    assert resolver.asked == ["192.0.2.1", "192.0.2.1"]


def test_build_chain_puts_customer_ranges_first(
    tmp_path: Path, asn_db: Path, country_db: Path
) -> None:
    ranges = write_csv(tmp_path / "ranges.csv", RANGES + "bad,row\n")
    chain = build_chain(
        IdentifySettings(mmdb=[asn_db, country_db], ip_ranges_csv=ranges, cache_size=10)
    )
    assert [r.name for r in chain.resolvers] == [
        "csv:ranges.csv", "mmdb:GeoLite2-ASN.mmdb", "mmdb:GeoLite2-Country.mmdb"
    ]
    # the ASN database also knows nothing of 203.0.113.0/24; the country comes from the last
    acme = chain.lookup("203.0.113.7")
    assert acme.org is not None and acme.org.key == "range:acme.example" and acme.country == "DE"
    google = chain.lookup("8.8.8.8")
    assert google.org is not None and google.org.key == "asn:15169" and google.country == "US"
    assert chain.lookup("10.9.9.9") == IpInfo(None, None)
    chain.close()


def test_build_chain_with_a_missing_database_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"identify\.mmdb: .*absent\.mmdb"):
        build_chain(IdentifySettings(mmdb=[tmp_path / "absent.mmdb"]))
    with pytest.raises(ConfigError, match=r"identify\.ip_ranges_csv"):
        build_chain(IdentifySettings(ip_ranges_csv=tmp_path / "absent.csv"))


def test_build_chain_without_sources_finds_nothing() -> None:
    assert build_chain(IdentifySettings()).lookup("8.8.8.8") == IpInfo(None, None)
