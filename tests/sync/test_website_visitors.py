"""Website Visitors in the CRM through the engine and the memory CRM, on both databases:
pairing with accounts, the visitor's values on accounts and contacts, hits pushed once,
an account's website-visitor link moved in the CRM, and a CRM with its own visitor entity."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import Engine, select, update

from leadbridge.config import Settings
from leadbridge.connectors.memory import MemoryCRM
from leadbridge.store.ids import floor_id
from leadbridge.store.tables import hits
from leadbridge.sync.engine import SyncEngine
from leadbridge.sync.mapping import MappingManual
from support import rows, scalar
from visitor_seed import NOW, HitSeed, add_hits
from visitor_world import MANUAL, account_of, contact, permalink, sync, visit, visitor


def account(crm: MemoryCRM, account_id: str) -> dict[str, object]:
    return crm.records["accounts"][account_id]


def orders_of(crm: MemoryCRM, obj: str) -> list[int]:
    """The size of each order `obj` received."""
    return [len(order) for order in crm.orders if order[0].object == obj]


def test_visitor_is_paired_with_the_account_of_its_domain_and_fills_it(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    account_id = crm.put("accounts", name="Acme Corporation", domain="ACME.com")
    acme, token = visitor(engine, "Acme", score=80, days_ago=2, domain="acme.com",
                          phone="+441132000000")
    globex, _ = visitor(engine, "Globex", score=30, domain="globex.com")
    contact(engine, "ann@acme.com", acme)
    contact(engine, "bob@elsewhere.com", None)

    report = sync(engine, settings, connection_id, crm)

    assert report.counts["pull:accounts"]["linked"] == 1
    assert account_of(engine, acme) == account_id
    assert account_of(engine, globex) is None  # no account is made for every visitor
    assert list(crm.records["accounts"]) == [account_id]
    got = account(crm, account_id)
    assert got["name"] == "Acme Corporation"  # the CRM's own name stays...
    assert scalar(engine, "SELECT name FROM organisations WHERE id = :i", i=acme) == \
        "Acme Corporation"  # ...and the hub takes it
    assert got["score"] == 80 and got["band"] == "hot"
    assert got["last_visit"] == (NOW - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert got["permalink"] == permalink(settings, token)
    assert got["phone"] == "+441132000000"  # blank in the CRM: filled from the hub
    people = {c["email"]: c for c in crm.records["contacts"].values()}
    assert people["ann@acme.com"]["website_visitor_score"] == 80
    assert people["ann@acme.com"]["website_visitor_band"] == "hot"
    assert people["ann@acme.com"]["website_visitor_permalink"] == permalink(settings, token)
    assert people["ann@acme.com"]["website_visitor_last_visit"] == got["last_visit"]
    assert "website_visitor_score" not in people["bob@elsewhere.com"]  # no visitor: blank


def test_new_hits_update_the_account_and_its_contacts_on_the_next_push(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    account_id = crm.put("accounts", name="Acme", domain="acme.com")
    acme, _ = visitor(engine, "Acme", score=10, days_ago=3, domain="acme.com")
    contact(engine, "ann@acme.com", acme)
    sync(engine, settings, connection_id, crm)
    sync(engine, settings, connection_id, crm, NOW + timedelta(minutes=5))
    assert account(crm, account_id)["score"] == 10
    quiet = len(crm.orders)
    sync(engine, settings, connection_id, crm, NOW + timedelta(minutes=10))
    assert len(crm.orders) == quiet  # nothing changed: nothing sent

    later = NOW + timedelta(hours=1)
    visit(engine, acme, later, score=15, hits=2)
    sync(engine, settings, connection_id, crm, later + timedelta(minutes=1))

    got = account(crm, account_id)
    assert got["score"] == 40 and got["band"] == "warm"
    assert got["last_visit"] == later.strftime("%Y-%m-%dT%H:%M:%SZ")
    ann = next(c for c in crm.records["contacts"].values() if c["email"] == "ann@acme.com")
    assert ann["website_visitor_score"] == 40 and ann["website_visitor_band"] == "warm"
    assert ann["website_visitor_last_visit"] == got["last_visit"]


def test_decay_alone_pushes_the_score_when_the_band_changes(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    account_id = crm.put("accounts", name="Acme", domain="acme.com")
    visitor(engine, "Acme", score=55, days_ago=0.5, domain="acme.com")
    sync(engine, settings, connection_id, crm)
    sync(engine, settings, connection_id, crm, NOW + timedelta(minutes=5))
    assert account(crm, account_id)["score"] == 55
    # a day later the score is 54 (half-life 30 days), still hot: the CRM is left alone
    sync(engine, settings, connection_id, crm, NOW + timedelta(days=1))
    assert account(crm, account_id)["score"] == 55
    # five days later it is 49: warm, so the score and band go to the CRM
    sync(engine, settings, connection_id, crm, NOW + timedelta(days=5))
    got = account(crm, account_id)
    assert got["band"] == "warm" and got["score"] == 49


def test_scored_hits_of_paired_visitors_are_pushed_once_in_batches(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    account_id = crm.put("accounts", name="Acme", domain="acme.com")
    acme, _ = visitor(engine, "Acme", score=5, domain="acme.com")
    globex, _ = visitor(engine, "Globex", score=5, domain="globex.com")
    telekom, _ = visitor(engine, "Telekom", score=5, type="isp", domain="telekom.de")
    crm.put("accounts", name="Telekom", domain="telekom.de")  # an ISP is never paired
    with engine.begin() as conn:
        add_hits(conn, [HitSeed(f"https://www.example.com/p{i}", acme, "docs", 2.0)
                        for i in range(23)]
                 + [HitSeed("https://www.example.com/", acme, None, 0.0) for _ in range(3)]
                 + [HitSeed("https://www.example.com/x", acme, None, 5.0, is_bot=True)] * 2
                 + [HitSeed("https://www.example.com/g", globex, "docs", 2.0)] * 4
                 + [HitSeed("https://www.example.com/t", telekom, "docs", 2.0)] * 2)

    sync(engine, settings, connection_id, crm)

    hits = crm.records["website_hits"]
    assert len(hits) == 23  # scored, not bots, only of the paired visitor
    assert {h["regarding_id"] for h in hits.values()} == {account_id}
    assert {h["regarding_object"] for h in hits.values()} == {"accounts"}
    assert sorted(h["url"] for h in hits.values()) == sorted(
        f"https://www.example.com/p{i}" for i in range(23))
    assert orders_of(crm, "website_hits") == [10, 10, 3]
    assert len({h["hit_id"] for h in hits.values()}) == 23

    sync(engine, settings, connection_id, crm, NOW + timedelta(minutes=5))
    assert orders_of(crm, "website_hits") == [10, 10, 3]  # none sent twice

    visit(engine, acme, NOW + timedelta(minutes=6), score=3, hits=2)
    crm.put("accounts", name="Globex", domain="globex.com")  # Globex gets its account
    sync(engine, settings, connection_id, crm, NOW + timedelta(minutes=10))
    assert len(crm.records["website_hits"]) == 23 + 2 + 4
    assert orders_of(crm, "website_hits")[3:] == [6]
    assert scalar(engine, "SELECT count(*) FROM object_links WHERE hub_object = "
                          "'website_hit'") == 29


def test_setting_a_permalink_on_an_account_pairs_it_and_changing_it_moves_the_pair(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    acme_account = crm.put("accounts", name="Acme", domain="acme.com")
    holding = crm.put("accounts", name="Globex Holdings", domain="globex-holdings.com")
    acme, acme_token = visitor(engine, "Acme", score=70, domain="acme.com")
    globex, globex_token = visitor(engine, "Globex", score=30, domain="globex.com")
    sync(engine, settings, connection_id, crm)
    assert account_of(engine, acme) == acme_account and account_of(engine, globex) is None

    # (a) set: a salesperson pastes Globex's permalink on the holding's account
    crm.edit("accounts", holding, permalink=permalink(settings, globex_token) + "/")
    sync(engine, settings, connection_id, crm, NOW + timedelta(minutes=5))
    assert account_of(engine, globex) == holding
    assert account(crm, holding)["score"] == 30  # and the account is filled at once
    assert account(crm, holding)["permalink"] == permalink(settings, globex_token)

    # (a) changed: the Acme account is really Globex's
    crm.edit("accounts", acme_account, permalink=permalink(settings, globex_token))
    report = sync(engine, settings, connection_id, crm, NOW + timedelta(minutes=10))
    assert report.counts["pull:accounts"]["relinked"] == 1
    assert account_of(engine, globex) == acme_account
    assert account_of(engine, acme) is None
    assert account(crm, acme_account)["score"] == 30

    # settled: further cycles move nothing back, whatever the holding's account still says
    for minutes in (15, 20):
        sync(engine, settings, connection_id, crm, NOW + timedelta(minutes=minutes))
    assert account_of(engine, globex) == acme_account and account_of(engine, acme) is None
    assert rows(engine, "SELECT hub_id, remote_id FROM object_links WHERE hub_object = "
                        "'website_visitor'") == [(str(globex), acme_account)]
    assert acme_token  # Acme keeps its permalink; it waits for an account of its own


def test_an_unpaired_account_cannot_take_a_visitor_another_account_holds(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    acme_account = crm.put("accounts", name="Acme", domain="acme.com")
    acme, token = visitor(engine, "Acme", score=70, domain="acme.com")
    sync(engine, settings, connection_id, crm)
    other = crm.put("accounts", name="Someone", domain="someone.com",
                    permalink=permalink(settings, token))
    sync(engine, settings, connection_id, crm, NOW + timedelta(minutes=5))
    assert account_of(engine, acme) == acme_account
    assert "score" not in account(crm, other)


def test_a_permalink_naming_no_visitor_changes_nothing(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    acme_account = crm.put("accounts", name="Acme", domain="acme.com")
    acme, _ = visitor(engine, "Acme", score=70, domain="acme.com")
    isp, isp_token = visitor(engine, "Telekom", score=70, type="isp")
    sync(engine, settings, connection_id, crm)
    crm.edit("accounts", acme_account, permalink=permalink(settings, isp_token))
    sync(engine, settings, connection_id, crm, NOW + timedelta(minutes=5))
    crm.edit("accounts", acme_account, permalink="https://hub.example/p/no-such-token-at-all")
    sync(engine, settings, connection_id, crm, NOW + timedelta(minutes=10))
    assert account_of(engine, acme) == acme_account and account_of(engine, isp) is None


CUSTOM_ENTITY = MappingManual.model_validate({"objects": [
    {"hub": "website_visitor", "crm": "website_visitors", "match": ["domain", "name"],
     "fields": [
         {"hub": "name", "crm": "name"}, {"hub": "domain", "crm": "domain"},
         {"hub": "crm_account_id", "crm": "account_id", "rule": "crm_wins"},
         *({"hub": n, "crm": n, "direction": "to_crm"}
           for n in ("score", "band", "last_visit", "permalink"))]},
    {"hub": "website_hit", "crm": "website_hits", "match": ["hit_id"], "pull": False,
     "fields": [{"hub": "hit_id", "crm": "hit_id"},
                {"hub": "visitor_record", "crm": "regarding_id"},
                {"hub": "url", "crm": "url"}, {"hub": "score", "crm": "score"}],
     "constants": {"regarding_object": "website_visitors"}},
]})


def test_a_crm_with_a_visitor_entity_gets_visitor_and_hit_records_and_its_account_lookup(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    acme, token = visitor(engine, "Acme", score=60, domain="acme.com")
    with engine.begin() as conn:
        add_hits(conn, [HitSeed("https://www.example.com/pricing", acme, "pricing", 8.0)] * 3)
    sync(engine, settings, connection_id, crm, manual=CUSTOM_ENTITY)

    (record_id, record), = crm.records["website_visitors"].items()
    assert record["name"] == "Acme" and record["score"] == 60
    assert record["permalink"] == permalink(settings, token)
    assert account_of(engine, acme) is None  # the visitor record is not the account
    hits = list(crm.records["website_hits"].values())
    assert len(hits) == 3 and {h["regarding_id"] for h in hits} == {record_id}

    # (a) with a lookup: the salesperson points the visitor record at an account
    account_id = crm.put("accounts", name="Acme Corporation", domain="acme.com")
    crm.edit("website_visitors", record_id, account_id=account_id)
    sync(engine, settings, connection_id, crm, NOW + timedelta(minutes=5), CUSTOM_ENTITY)
    assert account_of(engine, acme) == account_id


def test_hits_stored_before_the_last_push_are_sent_when_their_visitor_is_paired_later(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    acme, _ = visitor(engine, "Acme", score=5, domain="acme.com")
    globex, _ = visitor(engine, "Globex", score=5, domain="globex.com")
    acme_account = crm.put("accounts", name="Acme", domain="acme.com")
    with engine.begin() as conn:  # stored a month before the first cycle
        add_hits(conn, [HitSeed("https://www.example.com/a", acme, "docs", 2.0),
                        HitSeed("https://www.example.com/g", globex, "docs", 2.0)])
        month_ago = floor_id(NOW - timedelta(days=30)).int
        old_ids = conn.execute(select(hits.c.id).order_by(hits.c.id)).scalars().all()
        for i, old in enumerate(old_ids, start=1):  # distinct, in the same order
            conn.execute(update(hits).where(hits.c.id == old).values(
                id=uuid.UUID(int=month_ago + i)))
    sync(engine, settings, connection_id, crm)
    assert [h["regarding_id"] for h in crm.records["website_hits"].values()] == [acme_account]

    sync(engine, settings, connection_id, crm, NOW + timedelta(days=1))
    globex_account = crm.put("accounts", name="Globex", domain="globex.com")
    sync(engine, settings, connection_id, crm, NOW + timedelta(days=2))
    assert sorted(h["regarding_id"] for h in crm.records["website_hits"].values()) == sorted(
        [acme_account, globex_account])
    assert account_of(engine, globex) == globex_account


def test_an_account_deleted_in_the_crm_is_no_longer_the_visitors_account(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    soft = crm.put("accounts", name="Acme", domain="acme.com")
    gone = crm.put("accounts", name="Globex", domain="globex.com")
    acme, _ = visitor(engine, "Acme", score=5, domain="acme.com")
    globex, _ = visitor(engine, "Globex", score=5, domain="globex.com")
    sync(engine, settings, connection_id, crm)
    assert account_of(engine, acme) == soft and account_of(engine, globex) == gone

    crm.remove("accounts", soft)  # reported as deleted by the next pull
    crm.remove("accounts", gone, purge=True)  # learnt when an update answers "not found"
    visit(engine, globex, NOW + timedelta(minutes=1), score=4)
    report = sync(engine, settings, connection_id, crm, NOW + timedelta(minutes=5))

    assert report.counts["pull:accounts"]["deleted_in_crm"] == 1
    assert report.counts["push:website_visitor"]["deleted_in_crm"] == 1
    assert account_of(engine, acme) is None and account_of(engine, globex) is None
    assert crm.records["accounts"] == {}  # and no account is made again


def test_a_dry_run_shows_a_relink_and_moves_nothing(
        engine: Engine, settings: Settings, connection_id: int, crm: MemoryCRM) -> None:
    acme_account = crm.put("accounts", name="Acme", domain="acme.com")
    acme, _ = visitor(engine, "Acme", score=70, domain="acme.com")
    globex, globex_token = visitor(engine, "Globex", score=30, domain="globex.com")
    sync(engine, settings, connection_id, crm)
    crm.edit("accounts", acme_account, permalink=permalink(settings, globex_token))
    before = rows(engine, "SELECT * FROM object_links ORDER BY id")
    calls = len(crm.orders)

    plan = SyncEngine(engine, settings, connection_id, crm, MANUAL, dry_run=True,
                      sleep=lambda s: None, clock=lambda: NOW + timedelta(minutes=5)).run()

    assert any(c.operation == "relink" and c.key == acme_account and str(globex) in c.why
               for c in plan.plan)
    assert rows(engine, "SELECT * FROM object_links ORDER BY id") == before
    assert account_of(engine, acme) == acme_account and account_of(engine, globex) is None
    assert len(crm.orders) == calls
