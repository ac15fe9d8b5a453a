"""Erasure of a person and raw-hit retention, through real hits, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import ColumnElement, Connection, insert, or_, select
from starlette.testclient import TestClient

from leadbridge.config import PageRuleConfig
from leadbridge.errors import InputError, NotFound
from leadbridge.hub import Hub
from leadbridge.identify import organisations as orgs
from leadbridge.identify.resolvers import OrgMatch
from leadbridge.privacy import retention
from leadbridge.privacy.erase import ErasureReport, erase_browser, erase_contact
from leadbridge.privacy.retention import apply_retention
from leadbridge.scoring.decay import Decay
from leadbridge.scoring.ruleset import load_decay, replace_stored_rules
from leadbridge.store.state import config_version
from leadbridge.store.tables import hits
from support import rows, scalar, track

ACME_IP = "203.0.113.5"  # Acme Corp in the test ranges
ACME_IP_2 = "203.0.113.77"
JANE_1, JANE_2, BOB, ANON = ("aaaaaaaaaaaaaaa1", "aaaaaaaaaaaaaaa2", "bbbbbbbbbbbbbbbb",
                             "cccccccccccccccc")


def visit(client: TestClient, site: int, key: str, path: str, visitor: str, *,
          ip: str = ACME_IP, when: datetime | None = None, **params: str) -> None:
    """A page view from `ip` (sent as `cip`, so with the API key), optionally back-dated."""
    if when is not None:
        params["cdt"] = str(int(when.timestamp()))
    r = track(client, site, f"https://www.example.com{path}", _id=visitor, cip=ip,
              token_auth=key, **params)
    assert r.status_code in (200, 204), r.text


def decay_of(hub: Hub) -> Decay:
    with hub.engine.connect() as conn:
        return load_decay(conn, hub.settings.scoring)


def acme(hub: Hub) -> Any:
    [row] = rows(hub.engine, "SELECT id, hit_count, score_weight FROM organisations "
                             "WHERE name = 'Acme Corp'")
    return row


def weight_of_hits(hub: Hub, *where: ColumnElement[bool]) -> float:
    """What the human hits matching `where` add to a total (read through the typed table)."""
    decay = decay_of(hub)
    with hub.engine.connect() as conn:
        found = conn.execute(select(hits.c.score, hits.c.occurred_at)
                             .where(hits.c.is_bot.is_(False), *where)).all()
    return sum(decay.weight(h.score, h.occurred_at) for h in found)


def browser_id(hub: Hub, visitor: str) -> int:
    return int(scalar(hub.engine, "SELECT id FROM browser_visitors WHERE visitor_key = :k",
                      k=visitor))


@pytest.fixture
def pricing_rule(hub: Hub) -> None:
    """/pricing* scores 10; every other page the default 1."""
    with hub.engine.begin() as conn:
        replace_stored_rules(conn, [PageRuleConfig(pattern="/pricing*", name="Pricing",
                                                   category="pricing", score=10)], [])
    hub.refresh(force=True)


@pytest.fixture
def people(client: TestClient, site_id: int, api_key: str, hub: Hub,
           pricing_rule: None) -> None:
    """Jane on two browsers, Bob on one, and one anonymous browser, all from Acme Corp."""
    now = hub.now()
    visit(client, site_id, api_key, "/pricing", JANE_1, uid="Jane@Example.com",
          when=now - timedelta(days=10))
    visit(client, site_id, api_key, "/blog/a", JANE_1, when=now - timedelta(days=3))
    visit(client, site_id, api_key, "/pricing/team", JANE_2, uid="jane@example.com",
          ip=ACME_IP_2)
    visit(client, site_id, api_key, "/pricing", BOB, uid="bob@example.com")
    visit(client, site_id, api_key, "/blog/b", BOB, when=now - timedelta(days=1))
    visit(client, site_id, api_key, "/about", ANON)


def erase_contact_now(hub: Hub, email: str) -> ErasureReport:
    with hub.engine.begin() as conn:
        return erase_contact(conn, email, load_decay(conn, hub.settings.scoring))


def erase_browser_now(hub: Hub, visitor: str) -> ErasureReport:
    with hub.engine.begin() as conn:
        return erase_browser(conn, visitor, load_decay(conn, hub.settings.scoring))


# -- erasure -----------------------------------------------------------------------------------


def test_erase_contact_removes_its_hits_browsers_and_record_and_keeps_others(
    people: None, hub: Hub,
) -> None:
    assert scalar(hub.engine, "SELECT count(*) FROM hits") == 6
    report = erase_contact_now(hub, "  JANE@example.com ")
    assert (report.contacts, report.browsers, report.hits) == (1, 2, 3)
    assert scalar(hub.engine, "SELECT count(*) FROM contacts WHERE email = 'jane@example.com'") == 0
    keys = {r.visitor_key for r in rows(hub.engine, "SELECT visitor_key FROM browser_visitors")}
    assert keys == {BOB, ANON}
    left = sorted(r.url for r in rows(hub.engine, "SELECT url FROM hits"))
    assert left == ["https://www.example.com/about", "https://www.example.com/blog/b",
                    "https://www.example.com/pricing"]
    # Bob keeps his contact, his hits and his totals
    [bob] = rows(hub.engine, "SELECT id, hit_count FROM contacts WHERE email = 'bob@example.com'")
    assert bob.hit_count == 2
    assert scalar(hub.engine, "SELECT count(*) FROM hits WHERE contact_id = :c", c=bob.id) == 2


def test_erase_contact_lowers_organisation_totals_by_exactly_its_hits(
    people: None, hub: Hub,
) -> None:
    before = acme(hub)
    assert before.hit_count == 6
    jane_id = scalar(hub.engine, "SELECT id FROM contacts WHERE email = 'jane@example.com'")
    erased_weight = weight_of_hits(hub, hits.c.contact_id == jane_id)
    others_weight = weight_of_hits(
        hub, or_(hits.c.contact_id.is_(None), hits.c.contact_id != jane_id))
    assert erased_weight > 0 and others_weight > 0
    erase_contact_now(hub, "jane@example.com")
    after = acme(hub)
    assert after.hit_count == 3
    assert after.score_weight == pytest.approx(
        before.score_weight - erased_weight, rel=1e-9)
    assert after.score_weight == pytest.approx(others_weight, rel=1e-9)
    # in today's points: Bob's pricing (10) + Bob's blog a day ago + the anonymous page view
    decay = decay_of(hub)
    score = decay.current(after.score_weight, hub.now())
    assert score == pytest.approx(10 + 2 ** (-1 / 30) + 1, rel=1e-3)


def test_erase_contact_leaves_a_hash_of_the_email_not_the_email(people: None, hub: Hub) -> None:
    erase_contact_now(hub, "Jane@Example.com")
    [row] = rows(hub.engine, "SELECT * FROM erasures")
    assert row.subject == "contact"
    assert row.subject_hash == hashlib.sha256(b"jane@example.com").hexdigest()
    assert row.hits_deleted == 3
    assert "jane" not in " ".join(str(v) for v in row).lower()


def test_erase_browser_of_a_contact_takes_only_that_browsers_share(
    people: None, hub: Hub,
) -> None:
    jane_id = scalar(hub.engine, "SELECT id FROM contacts WHERE email = 'jane@example.com'")
    jane_before = rows(hub.engine, "SELECT hit_count, score_weight FROM contacts WHERE id = :c",
                       c=jane_id)[0]
    org_before = acme(hub)
    bv = browser_id(hub, JANE_1)
    erased_weight = weight_of_hits(hub, hits.c.browser_visitor_id == bv)

    report = erase_browser_now(hub, JANE_1.upper())
    assert (report.contacts, report.browsers, report.hits) == (0, 1, 2)

    [jane] = rows(hub.engine, "SELECT hit_count, score_weight FROM contacts WHERE id = :c",
                  c=jane_id)
    assert jane.hit_count == jane_before.hit_count - 2 == 1
    assert jane.score_weight == pytest.approx(jane_before.score_weight - erased_weight, rel=1e-9)
    assert jane.score_weight == pytest.approx(
        weight_of_hits(hub, hits.c.contact_id == jane_id), rel=1e-9)
    org = acme(hub)
    assert org.hit_count == org_before.hit_count - 2
    assert org.score_weight == pytest.approx(
        org_before.score_weight - erased_weight, rel=1e-9)
    assert scalar(hub.engine, "SELECT count(*) FROM hits WHERE browser_visitor_id = :b",
                  b=bv) == 0
    assert scalar(hub.engine, "SELECT count(*) FROM browser_visitors WHERE id = :b", b=bv) == 0
    assert scalar(hub.engine, "SELECT count(*) FROM hits") == 4
    [row] = rows(hub.engine, "SELECT subject, subject_hash, hits_deleted FROM erasures")
    assert (row.subject, row.hits_deleted) == ("browser", 2)
    assert row.subject_hash == hashlib.sha256(JANE_1.encode()).hexdigest()


def test_erase_anonymous_browser_lowers_its_organisation_only(people: None, hub: Hub) -> None:
    contacts_before = rows(hub.engine, "SELECT id, hit_count, score_weight FROM contacts "
                                       "ORDER BY id")
    org_before = acme(hub)
    erased_weight = weight_of_hits(hub, hits.c.browser_visitor_id == browser_id(hub, ANON))
    report = erase_browser_now(hub, ANON)
    assert (report.contacts, report.browsers, report.hits) == (0, 1, 1)
    assert rows(hub.engine, "SELECT id, hit_count, score_weight FROM contacts "
                            "ORDER BY id") == contacts_before
    org = acme(hub)
    assert org.hit_count == org_before.hit_count - 1
    assert org.score_weight == pytest.approx(
        org_before.score_weight - erased_weight, rel=1e-9)


def test_bot_hits_are_erased_without_touching_totals(client: TestClient, site_id: int,
                                                     api_key: str, hub: Hub) -> None:
    visit(client, site_id, api_key, "/", ANON)
    track(client, site_id, "https://www.example.com/robots", _id=ANON, cip=ACME_IP,
          token_auth=api_key,
          ua="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
    assert scalar(hub.engine, "SELECT count(*) FROM hits WHERE is_bot") == 1
    assert acme(hub).hit_count == 1
    report = erase_browser_now(hub, ANON)
    assert report.hits == 2
    org = acme(hub)
    assert org.hit_count == 0
    assert org.score_weight == pytest.approx(0.0, abs=1e-9)


def test_erasing_hits_of_a_blocked_organisation_leaves_its_totals_alone(
    client: TestClient, site_id: int, api_key: str, hub: Hub,
) -> None:
    # Acme is blocked before its first visit, so its hits never count in its totals
    with hub.engine.begin() as conn:
        ids = orgs.ensure_organisations(conn, [OrgMatch("range:acme.example", "Acme Corp",
                                                        "acme.example", "company", 1.0,
                                                        "csv:ranges.csv")], hub.now())
        orgs.block(conn, ids["range:acme.example"])
    visit(client, site_id, api_key, "/pricing", JANE_1, uid="jane@example.com")
    visit(client, site_id, api_key, "/blog", JANE_1)
    assert scalar(hub.engine, "SELECT count(*) FROM hits WHERE organisation_id = :o",
                  o=ids["range:acme.example"]) == 2
    assert acme(hub).hit_count == 0
    erase_contact_now(hub, "jane@example.com")
    org = acme(hub)
    # BUG in privacy/erase.py (_subtract_from_organisations): it subtracts the hits of a
    # blocked organisation that were never added, leaving hit_count -2 and a negative score.
    assert org.hit_count == 0, f"blocked organisation's hit_count went to {org.hit_count}"
    assert org.score_weight == pytest.approx(0.0, abs=1e-9)


def test_erase_tells_running_servers_to_drop_their_cached_ids(people: None, hub: Hub) -> None:
    # The intake's writers cache (site, visitor id) -> (browser id, contact id) and check the
    # config version to drop it (the contacts API bumps it for the same reason). Without a
    # bump, the erased browser's next hit is written with the deleted browser and contact ids.
    # BUG in privacy/erase.py: neither erase_contact nor erase_browser bumps the version.
    with hub.engine.connect() as conn:
        before = config_version(conn)
    erase_contact_now(hub, "jane@example.com")
    with hub.engine.connect() as conn:
        assert config_version(conn) != before, "erase_contact did not bump the config version"
    erase_browser_now(hub, ANON)
    with hub.engine.connect() as conn:
        assert config_version(conn) != before


def _erase_in(conn: Connection, hub: Hub, email: str) -> None:
    erase_contact(conn, email, load_decay(conn, hub.settings.scoring))


def test_erase_unknown_or_malformed_subject_is_refused_and_changes_nothing(
    people: None, hub: Hub,
) -> None:
    with hub.engine.begin() as conn, pytest.raises(NotFound, match=r"nobody@example\.com"):
        _erase_in(conn, hub, "nobody@example.com")
    with hub.engine.begin() as conn, pytest.raises(InputError, match="not an email"):
        _erase_in(conn, hub, "jane at example")
    with pytest.raises(NotFound, match="0000000000000000"):
        erase_browser_now(hub, "0000000000000000")
    with pytest.raises(InputError, match="visitor id"):
        erase_browser_now(hub, "   ")
    assert scalar(hub.engine, "SELECT count(*) FROM hits") == 6
    assert scalar(hub.engine, "SELECT count(*) FROM contacts") == 2
    assert scalar(hub.engine, "SELECT count(*) FROM erasures") == 0
    assert acme(hub).hit_count == 6


# -- retention ---------------------------------------------------------------------------------


def test_retention_deletes_only_old_hits_and_keeps_totals(client: TestClient, site_id: int,
                                                          api_key: str, hub: Hub) -> None:
    now = hub.now()
    visit(client, site_id, api_key, "/old", BOB, uid="bob@example.com",
          when=now - timedelta(days=40))
    visit(client, site_id, api_key, "/older", ANON, when=now - timedelta(days=90))
    visit(client, site_id, api_key, "/recent", BOB, when=now - timedelta(days=10))
    visit(client, site_id, api_key, "/today", ANON)
    totals = rows(hub.engine, "SELECT hit_count, score_weight, first_visit_at FROM organisations")
    contact = rows(hub.engine, "SELECT hit_count, score_weight FROM contacts")

    assert apply_retention(hub.engine, 30, hub.now()) == 2

    left = sorted(r.url.rsplit("/", 1)[1] for r in rows(hub.engine, "SELECT url FROM hits"))
    assert left == ["recent", "today"]
    assert rows(hub.engine, "SELECT hit_count, score_weight, first_visit_at "
                            "FROM organisations") == totals
    assert rows(hub.engine, "SELECT hit_count, score_weight FROM contacts") == contact
    assert scalar(hub.engine, "SELECT count(*) FROM browser_visitors") == 2
    assert apply_retention(hub.engine, 30, hub.now()) == 0


def test_retention_keeps_a_hit_exactly_at_the_limit(client: TestClient, site_id: int,
                                                    api_key: str, hub: Hub) -> None:
    moment = (hub.now() - timedelta(days=5)).replace(microsecond=0)
    visit(client, site_id, api_key, "/edge", ANON, when=moment)
    with hub.engine.connect() as conn:
        assert conn.execute(select(hits.c.occurred_at)).scalar_one() == moment
    assert apply_retention(hub.engine, 1, moment + timedelta(days=1)) == 0
    assert apply_retention(hub.engine, 1, moment + timedelta(days=1, seconds=1)) == 1
    assert scalar(hub.engine, "SELECT count(*) FROM hits") == 0


def test_retention_works_through_many_chunks(client: TestClient, site_id: int, api_key: str,
                                             hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    now = hub.now()
    for day in range(40, 47):
        visit(client, site_id, api_key, f"/d{day}", ANON, when=now - timedelta(days=day))
    visit(client, site_id, api_key, "/today", ANON)
    monkeypatch.setattr(retention, "CHUNK", 2)
    assert apply_retention(hub.engine, 30, hub.now()) == 7
    assert [r.url for r in rows(hub.engine, "SELECT url FROM hits")] == [
        "https://www.example.com/today"]


def test_erase_after_retention_subtracts_only_the_hits_still_stored(
    client: TestClient, site_id: int, api_key: str, hub: Hub,
) -> None:
    now = hub.now()
    visit(client, site_id, api_key, "/old", BOB, uid="bob@example.com",
          when=now - timedelta(days=60))
    visit(client, site_id, api_key, "/new", BOB)
    visit(client, site_id, api_key, "/other", ANON)
    assert apply_retention(hub.engine, 30, hub.now()) == 1
    before = acme(hub)
    bob_weight = weight_of_hits(hub, hits.c.contact_id.is_not(None))
    report = erase_contact_now(hub, "bob@example.com")
    assert report.hits == 1
    org = acme(hub)
    assert org.hit_count == before.hit_count - 1
    assert org.score_weight == pytest.approx(
        before.score_weight - bob_weight, rel=1e-9)


def test_erase_keeps_sales_and_calls_but_not_what_ties_them_to_the_person(
    people: None, hub: Hub,
) -> None:
    from leadbridge.store.ids import new_id
    from leadbridge.store.tables import calls, conversions

    now = datetime.now(UTC)
    jane_id = scalar(hub.engine, "SELECT id FROM contacts WHERE email = 'jane@example.com'")
    jane_bv, bob_bv = browser_id(hub, JANE_1), browser_id(hub, BOB)
    with hub.engine.begin() as conn:
        for key, bv, contact, ref in ((JANE_1, jane_bv, jane_id, "T-1"),
                                      (BOB, bob_bv, None, "T-2")):
            conn.execute(insert(conversions).values(
                id=new_id(), action="sale", occurred_at=now, transaction_ref=ref, amount=120,
                currency="EUR", visitor_key=key, browser_visitor_id=bv, contact_id=contact,
                source="api", dedupe_key=f"ref:{ref}", created_at=now))
        conn.execute(insert(calls), [
            {"call_ref": "C-1", "tracking_number": "+3212345678", "caller_number": "+3298765432",
             "started_at": now, "duration_s": 60, "browser_visitor_id": jane_bv, "created_at": now},
            {"call_ref": "C-2", "tracking_number": "+3212345678", "caller_number": "+3291111111",
             "started_at": now, "duration_s": 30, "browser_visitor_id": bob_bv, "created_at": now},
        ])

    erase_contact_now(hub, "jane@example.com")

    got = {r.transaction_ref: r for r in rows(
        hub.engine, "SELECT transaction_ref, amount, visitor_key, browser_visitor_id, contact_id "
                    "FROM conversions")}
    assert float(got["T-1"].amount) == 120.0  # the sale stays in the reports
    assert (got["T-1"].visitor_key, got["T-1"].browser_visitor_id, got["T-1"].contact_id) == (
        None, None, None)
    assert (got["T-2"].visitor_key, got["T-2"].browser_visitor_id) == (BOB, bob_bv)
    by_ref = {r.call_ref: r for r in rows(
        hub.engine, "SELECT call_ref, caller_number, browser_visitor_id FROM calls")}
    assert (by_ref["C-1"].caller_number, by_ref["C-1"].browser_visitor_id) == (None, None)
    assert (by_ref["C-2"].caller_number, by_ref["C-2"].browser_visitor_id) == (
        "+3291111111", bob_bv)

    erase_browser_now(hub, BOB)
    assert scalar(hub.engine, "SELECT visitor_key FROM conversions WHERE transaction_ref = 'T-2'") \
        is None
    assert scalar(hub.engine, "SELECT caller_number FROM calls WHERE call_ref = 'C-2'") is None
