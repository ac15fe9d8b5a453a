"""Organisations: creation from matches, people's corrections, merges — on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, insert, select, text

from leadbridge.errors import InputError, NotFound
from leadbridge.identify.organisations import (
    block,
    create_organisation,
    ensure_organisations,
    get_organisation,
    is_website_visitor,
    merge,
    reclassify,
    rename,
    unblock,
)
from leadbridge.identify.resolvers import OrgMatch
from leadbridge.store.ids import new_id
from leadbridge.store.state import config_version
from leadbridge.store.tables import (
    company_profiles,
    contacts,
    hits,
    organisation_keys,
    organisations,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def match(key: str, name: str, domain: str | None = None, type: str = "company") -> OrgMatch:
    return OrgMatch(key, name, domain, type, 0.5, "mmdb:test.mmdb", None)


def create(conn: Connection, key: str, name: str, domain: str | None = None, **values: Any) -> int:
    org_id = ensure_organisations(conn, [match(key, name, domain)], NOW)[key]
    if values:
        conn.execute(organisations.update().where(organisations.c.id == org_id).values(**values))
    return org_id


def add_hit(conn: Connection, org_id: int, when: datetime, score: float = 1.0) -> None:
    conn.execute(
        insert(hits).values(
            id=new_id(), site_id=1, occurred_at=when, kind="pageview", browser_visitor_id=1,
            organisation_id=org_id, url="https://example.com/", score=score, is_bot=False,
        )
    )


def org_count(conn: Connection) -> int:
    return int(conn.execute(text("SELECT count(*) FROM organisations")).scalar_one())


# -- ensure_organisations -----------------------------------------------------------------------


def test_new_keys_create_organisations_with_unguessable_permalinks(engine: Engine) -> None:
    with engine.begin() as conn:
        ids = ensure_organisations(
            conn,
            [match("asn:7922", "COMCAST-7922", type="isp"),
             match("range:acme.example", "Acme", "acme.example"),
             match("asn:7922", "COMCAST-7922", type="isp")],
            NOW,
        )
        assert set(ids) == {"asn:7922", "range:acme.example"}
        acme = get_organisation(conn, ids["range:acme.example"])
        comcast = get_organisation(conn, ids["asn:7922"])
    assert (acme.name, acme.domain, acme.type, acme.type_set_by) == (
        "Acme", "acme.example", "company", "lookup"
    )
    assert comcast.type == "isp" and comcast.source == "mmdb:test.mmdb"
    assert acme.created_at == acme.updated_at == NOW
    assert acme.first_visit_at is None and acme.last_visit_at is None
    assert acme.hit_count == 0 and acme.score_weight == 0.0
    assert len(acme.permalink_token) >= 32 and acme.permalink_token != comcast.permalink_token


def test_known_keys_return_the_same_organisation(engine: Engine) -> None:
    with engine.begin() as conn:
        first = ensure_organisations(conn, [match("asn:1", "One")], NOW)
    with engine.begin() as conn:
        again = ensure_organisations(conn, [match("asn:1", "One renamed"), match("asn:2", "Two")],
                                     NOW)
        assert again["asn:1"] == first["asn:1"]
        assert org_count(conn) == 2
        assert get_organisation(conn, first["asn:1"]).name == "One"


def test_keys_of_a_merged_organisation_give_the_survivor(engine: Engine) -> None:
    with engine.begin() as conn:
        a = create(conn, "range:a.example", "A")
        b = create(conn, "range:b.example", "B")
        merge(conn, a, b)
        assert ensure_organisations(conn, [match("range:a.example", "A")], NOW) == {
            "range:a.example": b
        }


def test_new_organisation_is_filled_from_company_profile(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(company_profiles).values(
            domain="acme.example", name="Acme", name_key="acme", employees=120,
            industry="Machinery", phone="+1 555 0100"))
        conn.execute(insert(company_profiles).values(
            domain=None, name="Globex Ltd", name_key="globex", employees=40,
            website="https://globex.example"))
        by_domain = create(conn, "range:acme.example", "ACME Manufacturing", "acme.example")
        by_name = create(conn, "asn:64500", "GLOBEX")
        unknown = create(conn, "asn:64501", "Initech")
        acme, globex, initech = (get_organisation(conn, i) for i in (by_domain, by_name, unknown))
    assert (acme.employees, acme.industry, acme.phone) == (120, "Machinery", "+1 555 0100")
    assert acme.name == "ACME Manufacturing"  # the lookup's name stays
    assert (globex.employees, globex.website) == (40, "https://globex.example")
    assert initech.employees is None and initech.industry is None


def test_name_match_fills_the_domain_but_never_joins_different_domains(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(company_profiles).values(
            domain="acme.example", name="Acme", name_key="acme", employees=120))
        no_domain = get_organisation(conn, create(conn, "asn:1", "ACME"))
        other = get_organisation(conn, create(conn, "range:acme.test", "Acme", "acme.test"))
    assert (no_domain.domain, no_domain.employees) == ("acme.example", 120)
    assert (other.domain, other.employees) == ("acme.test", None)


def test_lost_race_removes_own_organisation_and_returns_the_winner(engine: Engine) -> None:
    with engine.begin() as conn:
        winner = create(conn, "asn:15169", "GOOGLE")
        # what a second process does when its first look found no key: create, then lose
        assert create_organisation(conn, match("asn:15169", "GOOGLE"), NOW) == winner
        assert org_count(conn) == 1


def test_concurrent_creation_of_one_key_makes_one_organisation(engine: Engine) -> None:
    """Two writers see the same new key at once; both end up with one organisation.

    On PostgreSQL the second really loses the race on the key row; SQLite lets one writer in
    at a time, so there the second waits and then finds the key.
    """
    key = "asn:64496"
    results: dict[str, int] = {}
    errors: list[BaseException] = []
    with engine.connect().execution_options(writer=True) as first:
        first.begin()
        results["first"] = ensure_organisations(first, [match(key, "First")], NOW)[key]

        def second() -> None:
            try:
                with engine.connect().execution_options(writer=True) as conn, conn.begin():
                    results["second"] = ensure_organisations(conn, [match(key, "Second")], NOW)[key]
            except BaseException as exc:  # handed to the main thread
                errors.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        if engine.dialect.name == "postgresql":
            _wait_for_a_blocked_insert(engine)  # waiting on the first's uncommitted key
        else:
            time.sleep(0.3)  # waiting for the write lock
        first.commit()
        thread.join(timeout=30)
    assert not errors and not thread.is_alive()
    assert results["second"] == results["first"]
    with engine.connect() as conn:
        assert org_count(conn) == 1
        assert conn.execute(select(organisations.c.name)).scalar_one() == "First"


def _wait_for_a_blocked_insert(engine: Engine) -> None:
    with engine.connect() as watcher:
        for _ in range(200):
            waiting = watcher.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query ILIKE 'INSERT INTO organisation_keys%' AND datname = current_database()"
            )).scalar_one()
            watcher.rollback()
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError("the second process never waited for the first one's key")


# -- people's corrections -----------------------------------------------------------------------


def test_rename_reclassify_block_unblock_bump_the_config_version(engine: Engine) -> None:
    with engine.begin() as conn:
        org_id = create(conn, "asn:7922", "COMCAST-7922")
        before = int(config_version(conn))
        assert rename(conn, org_id, "  Comcast   Cable ").name == "Comcast Cable"
        changed = reclassify(conn, org_id, "ISP")
        assert (changed.type, changed.type_set_by) == ("isp", "person")
        assert block(conn, org_id).blocked
        assert not unblock(conn, org_id).blocked
        assert int(config_version(conn)) == before + 4
        assert get_organisation(conn, org_id).updated_at > NOW


def test_bad_corrections_are_input_errors(engine: Engine) -> None:
    with engine.begin() as conn:
        org_id = create(conn, "asn:1", "One")
        with pytest.raises(InputError, match="unknown type 'partner'"):
            reclassify(conn, org_id, "partner")
        with pytest.raises(InputError, match="name is empty"):
            rename(conn, org_id, "   ")
        with pytest.raises(InputError, match="at most 300"):
            rename(conn, org_id, "x" * 301)
        with pytest.raises(NotFound, match="organisation 999999"):
            block(conn, 999999)
        with pytest.raises(NotFound):
            get_organisation(conn, 999999)


def test_a_merged_organisation_cannot_be_changed(engine: Engine) -> None:
    with engine.begin() as conn:
        a, b = create(conn, "asn:1", "A"), create(conn, "asn:2", "B")
        merge(conn, a, b)
        with pytest.raises(InputError, match=f"merged into {b}; change {b} instead"):
            rename(conn, a, "A2")


def test_website_visitors_are_companies_schools_and_public_bodies_not_blocked_or_merged(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        ids = {
            kind: create(conn, f"k:{kind}", kind, type=kind)
            for kind in ("company", "isp", "hosting", "education", "government")
        }
        blocked = create(conn, "k:blocked", "Blocked Co", blocked=True)
        merged = create(conn, "k:merged", "Merged Co")
        merge(conn, merged, ids["company"])
        isp_person_says_company = create(conn, "k:isp2", "Small ISP", type="isp")
        reclassify(conn, isp_person_says_company, "company")
        query = select(organisations.c.id).where(is_website_visitor())
        visible = set(conn.execute(query).scalars())
        assert not get_organisation(conn, blocked).is_website_visitor
    assert visible == {ids["company"], ids["education"], ids["government"],
                       isp_person_says_company}


# -- merge ----------------------------------------------------------------------------------------


def test_merge_moves_hits_contacts_keys_and_totals(engine: Engine) -> None:
    with engine.begin() as conn:
        source = create(conn, "asn:64500", "ACME-NET", hit_count=2, score_weight=3.5,
                        first_visit_at=NOW - timedelta(days=5),
                        last_visit_at=NOW - timedelta(days=1), employees=50, country="DE")
        target = create(conn, "range:acme.example", "Acme", "acme.example", hit_count=1,
                        score_weight=1.0, first_visit_at=NOW - timedelta(days=3),
                        last_visit_at=NOW, employees=120)
        add_hit(conn, source, NOW - timedelta(days=5))
        add_hit(conn, source, NOW - timedelta(days=1))
        add_hit(conn, target, NOW)
        conn.execute(insert(contacts).values(email="jo@acme.example", organisation_id=source,
                                             created_at=NOW))
        before = int(config_version(conn))

        survivor = merge(conn, source, target)

        assert survivor.id == target
        assert (survivor.hit_count, survivor.score_weight) == (3, 4.5)
        assert survivor.first_visit_at == NOW - timedelta(days=5)
        assert survivor.last_visit_at == NOW
        assert survivor.employees == 120  # the survivor's own value stays
        assert survivor.country == "DE"  # a value it lacked is taken over
        merged = get_organisation(conn, source)
        assert (merged.merged_into_id, merged.hit_count, merged.score_weight) == (target, 0, 0.0)
        assert not merged.is_website_visitor
        assert set(conn.execute(select(hits.c.organisation_id)).scalars()) == {target}
        assert conn.execute(select(contacts.c.organisation_id)).scalar_one() == target
        keys = dict(conn.execute(select(organisation_keys.c.match_key,
                                        organisation_keys.c.organisation_id)).all())
        assert keys == {"asn:64500": target, "range:acme.example": target}
        assert int(config_version(conn)) == before + 1


def test_merge_follows_chains_so_nothing_points_at_a_merged_organisation(engine: Engine) -> None:
    with engine.begin() as conn:
        a, b, c = (create(conn, f"asn:{n}", n) for n in ("1", "2", "3"))
        merge(conn, a, b)
        merge(conn, b, c)
        assert get_organisation(conn, a).merged_into_id == c
        assert get_organisation(conn, b).merged_into_id == c
        targets = set(conn.execute(select(organisation_keys.c.organisation_id)).scalars())
        assert targets == {c}
        assert ensure_organisations(conn, [match("asn:1", "1")], NOW) == {"asn:1": c}


def test_merge_refuses_itself_merged_and_missing_organisations(engine: Engine) -> None:
    with engine.begin() as conn:
        a, b, c = (create(conn, f"asn:{n}", n) for n in ("1", "2", "3"))
        with pytest.raises(InputError, match="into itself"):
            merge(conn, a, a)
        merge(conn, a, b)
        with pytest.raises(InputError, match=f"merged into {b}; merge into {b} instead"):
            merge(conn, c, a)
        with pytest.raises(InputError, match=f"already merged into {b}"):
            merge(conn, a, c)
        with pytest.raises(NotFound, match="organisation 999999"):
            merge(conn, c, 999999)


def test_merge_of_organisations_never_visited_keeps_visit_times_empty(engine: Engine) -> None:
    with engine.begin() as conn:
        a, b = create(conn, "asn:1", "A"), create(conn, "asn:2", "B")
        survivor = merge(conn, a, b)
    assert survivor.first_visit_at is None and survivor.last_visit_at is None
    assert survivor.hit_count == 0
