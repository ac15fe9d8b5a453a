"""Company CSV import: profiles upserted, bad rows reported, organisations enriched."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, select

from leadbridge.errors import InputError
from leadbridge.identify.enrichment import RowProblem, import_companies, profile_for
from leadbridge.identify.organisations import ensure_organisations, get_organisation, merge
from leadbridge.identify.resolvers import OrgMatch
from leadbridge.store.state import config_version
from leadbridge.store.tables import company_profiles

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def new_org(conn: Connection, key: str, name: str, domain: str | None = None) -> int:
    found = ensure_organisations(
        conn, [OrgMatch(key, name, domain, "company", 0.5, "test", None)], NOW
    )
    return found[key]


def profiles(conn: Connection) -> dict[str, dict[str, object]]:
    rows = conn.execute(select(company_profiles).order_by(company_profiles.c.id))
    return {(r.domain or r.name_key): dict(r._mapping) for r in rows}


GOOD = """domain,name,employees,industry,address,phone,website
acme.example,Acme Manufacturing,1200,Machinery,"1 Foundry Road, Springfield",+1 555 0100,https://acme.example
,Globex Logistics,340,Logistics,,,
https://www.initech.example/about,Initech,"1,250",Software,,,
"""


def test_import_creates_profiles_and_counts_add_up(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:
        report = import_companies(conn, write(tmp_path / "companies.csv", GOOD))
        stored = profiles(conn)
    assert (report.rows_read, report.created, report.updated, report.rejected) == (3, 3, 0, 0)
    assert report.errors == []
    assert stored["acme.example"]["address"] == "1 Foundry Road, Springfield"
    assert stored["acme.example"]["name_key"] == "acme manufacturing"
    assert stored["globex logistics"]["domain"] is None
    assert stored["initech.example"]["employees"] == 1250  # URL and thousands read sensibly
    assert "3 rows read, 3 companies added, 0 updated, 0 skipped" in report.summary()


BAD = """domain,name,employees,industry,address,phone,website
good.example,Good Co,10,,,,
,,5,Nothing to match on,,,
bad.example,Bad Count,many,,,,
bad2.example,Bad Count Two,12.5,,,,
not a domain,Bad Domain,,,,,
toomany.example,Too Many,1,x,y,z,w,extra
,---,,,,,
long.example,Long Phone,,,,{phone},

second.example,Second Good,,Retail,,,
""".format(phone="1" * 51)


def test_bad_rows_are_reported_by_line_and_good_rows_kept(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:
        report = import_companies(conn, write(tmp_path / "companies.csv", BAD))
        stored = profiles(conn)
    assert set(stored) == {"good.example", "second.example"}
    assert (report.rows_read, report.created, report.updated, report.rejected) == (9, 2, 0, 7)
    assert report.created + report.updated + report.rejected == report.rows_read
    expected = {
        3: "neither a domain nor a name",
        4: "employees 'many' is not a whole number",
        5: "employees '12.5' is not a whole number",
        6: "domain 'not a domain' is not a domain name",
        7: "the row has 8 values but the header names 7",
        8: "name '---' has no letters or digits",
        9: "phone is longer than 50 characters",
    }
    assert [p.line for p in report.errors] == list(expected)
    for problem in report.errors:
        assert expected[problem.line] in problem.reason, problem
    assert str(RowProblem(3, "x")) == "line 3: x"


def test_bom_semicolons_and_extra_columns(engine: Engine, tmp_path: Path) -> None:
    text = "Name;Employees;Notes\r\nGlobex Logistics;1.200;call back\r\n"
    with engine.begin() as conn:
        report = import_companies(conn, write(tmp_path / "c.csv", text, "utf-8-sig"))
        stored = profiles(conn)
    assert report.created == 1 and report.errors == []
    assert report.ignored_columns == ["notes"]
    assert stored["globex logistics"]["employees"] == 1200


def test_reimport_updates_and_blank_values_never_erase(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:
        import_companies(conn, write(tmp_path / "one.csv", GOOD))
    again = """domain,name,employees,industry
acme.example,,1300,
,Globex Logistics Ltd.,,Freight
,Umbrella,5,
umbrella.example,Umbrella,,Pharma
"""
    with engine.begin() as conn:
        report = import_companies(conn, write(tmp_path / "two.csv", again))
        stored = profiles(conn)
    assert (report.rows_read, report.created, report.updated, report.rejected) == (4, 2, 2, 0)
    acme = stored["acme.example"]
    assert (acme["employees"], acme["industry"], acme["name"]) == (1300, "Machinery",
                                                                  "Acme Manufacturing")
    globex = stored["globex logistics"]  # the same company by name
    assert (globex["industry"], globex["employees"], globex["name"]) == (
        "Freight", 340, "Globex Logistics Ltd."
    )
    assert stored["umbrella"]["employees"] == 5  # a name-only profile and a domain one
    assert stored["umbrella.example"]["industry"] == "Pharma"


def test_repeated_rows_in_one_file_count_as_updates(engine: Engine, tmp_path: Path) -> None:
    text = "domain,employees,industry\na.example,5,\nA.example,,Retail\n"
    with engine.begin() as conn:
        report = import_companies(conn, write(tmp_path / "c.csv", text))
        stored = profiles(conn)
    assert (report.rows_read, report.created, report.updated) == (2, 1, 1)
    assert (stored["a.example"]["employees"], stored["a.example"]["industry"]) == (5, "Retail")


def test_import_enriches_existing_organisations(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:
        by_domain = new_org(conn, "range:acme.example", "ACME", "acme.example")
        by_name = new_org(conn, "asn:64500", "GLOBEX-LOGISTICS")
        other_domain = new_org(conn, "range:acme.test", "Acme Manufacturing", "acme.test")
        source = new_org(conn, "asn:64501", "Initech")
        survivor = new_org(conn, "range:initech.example", "Initech Inc", "initech.example")
        merge(conn, source, survivor)
        before = int(config_version(conn))
        report = import_companies(conn, write(tmp_path / "c.csv", GOOD))
        acme, globex, acme_test, merged = (
            get_organisation(conn, i) for i in (by_domain, by_name, other_domain, source)
        )
        initech = get_organisation(conn, survivor)
        assert int(config_version(conn)) == before + 1
    assert report.organisations_updated == 3
    assert (acme.employees, acme.industry, acme.phone, acme.website) == (
        1200, "Machinery", "+1 555 0100", "https://acme.example"
    )
    assert acme.name == "ACME"  # people's names and lookups' names are not overwritten
    assert (globex.employees, globex.industry) == (340, "Logistics")
    assert acme_test.employees is None  # same name, different domain: another company
    assert initech.employees == 1250 and merged.employees is None


def test_import_fills_a_missing_organisation_domain_from_a_name_match(
    engine: Engine, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        org_id = new_org(conn, "asn:64500", "Acme Manufacturing Ltd")
        import_companies(conn, write(tmp_path / "c.csv", GOOD))
        assert get_organisation(conn, org_id).domain == "acme.example"


def test_profile_for_prefers_domain_then_name(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:
        import_companies(conn, write(tmp_path / "c.csv", GOOD))
        assert profile_for(conn, "acme.example", "whatever")["employees"] == 1200
        assert profile_for(conn, None, "ACME MANUFACTURING, INC.")["domain"] == "acme.example"
        assert profile_for(conn, "acme.test", "Acme Manufacturing") == {}
        assert profile_for(conn, "globex.test", "Globex Logistics")["employees"] == 340
        assert profile_for(conn, None, "Nobody") == {}


def test_unreadable_files_are_input_errors(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:
        with pytest.raises(InputError, match="no such file"):
            import_companies(conn, tmp_path / "absent.csv")
        with pytest.raises(InputError, match="domain or name among them"):
            import_companies(conn, write(tmp_path / "h.csv", "company,size\nAcme,5\n"))
        with pytest.raises(InputError, match="not UTF-8"):
            import_companies(conn, write(tmp_path / "l.csv", "name\nCafé Müller\n", "latin-1"))
        with pytest.raises(InputError, match="found nothing"):
            import_companies(conn, write(tmp_path / "e.csv", ""))
