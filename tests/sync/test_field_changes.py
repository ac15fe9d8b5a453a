"""The hub-side field-change log: what writes it, how "most recent wins" uses its field times,
echo suppression, and pruning, against the memory CRM on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select, update
from starlette.testclient import TestClient

from leadbridge.config import Settings
from leadbridge.connectors.memory import MemoryCRM
from leadbridge.connectors.memory.clock import MemoryClock
from leadbridge.hub import Hub
from leadbridge.identify import organisations as orgs
from leadbridge.identify.contacts import Identity, get_or_create_contact
from leadbridge.privacy.erase import erase_contact
from leadbridge.scoring.ruleset import load_decay
from leadbridge.store import field_changes, tables
from leadbridge.store.tables import connections, contacts, organisations
from leadbridge.sync import changelog
from leadbridge.sync.engine import CycleReport, SyncEngine
from leadbridge.sync.hubobjects import ContactObjects
from leadbridge.sync.mapping import MappingManual
from support import scalar
from visitor_seed import DECAY, seed_world

NOW = datetime(2026, 11, 20, 10, tzinfo=UTC)
MINUTE = timedelta(minutes=1)

MANUAL = MappingManual.model_validate({"objects": [{
    "hub": "contact", "crm": "contacts", "match": ["email"],
    "fields": [
        {"hub": "email", "crm": "email"},
        {"hub": "name", "crm": "first_name", "rule": "most_recent"},
    ]}]})


def add_connection(engine: Engine, name: str, *, enabled: bool = True) -> int:
    with engine.begin() as conn:
        return int(conn.execute(insert(connections).values(
            name=name, kind="memory", settings={}, created_at=NOW, updated_at=NOW,
            enabled=enabled).returning(connections.c.id)).scalar_one())


def add_contact(engine: Engine, email: str, name: str) -> int:
    with engine.begin() as conn:
        return int(conn.execute(insert(contacts).values(
            email=email, name=name, created_at=NOW - 60 * MINUTE,
            updated_at=NOW - 60 * MINUTE, hit_count=0, score_weight=0.0,
        ).returning(contacts.c.id)).scalar_one())


def cycle(engine: Engine, settings: Settings, cid: int, crm: MemoryCRM,
          at: datetime) -> CycleReport:
    report = SyncEngine(engine, settings, cid, crm, MANUAL, sleep=lambda s: None,
                        clock=lambda: at).run()
    assert report.status == "ok", report
    return report


def person_edits(engine: Engine, settings: Settings, contact_id: int, at: datetime,
                 **values: Any) -> None:
    """A person changes a contact in the hub (the hub objects' write, as the API would)."""
    with engine.begin() as conn:
        hub = ContactObjects(settings, load_decay(conn, settings.scoring), at)
        hub.write(conn, str(contact_id), values, origin=None)


def hit_arrives(engine: Engine, contact_id: int, at: datetime) -> None:
    """The intake counts a hit: the contact's totals and record time move, no field does."""
    with engine.begin() as conn:
        conn.execute(update(contacts).where(contacts.c.id == contact_id).values(
            hit_count=contacts.c.hit_count + 1, last_seen_at=at, updated_at=at))


def logged(engine: Engine) -> list[Any]:
    log = tables.field_changes
    with engine.connect() as conn:
        return list(conn.execute(select(log).order_by(log.c.changed_at, log.c.id)))


@pytest.mark.parametrize(("crm_edit_at", "winner"), [
    (NOW + 20 * MINUTE, "Anna"),   # the CRM changed the name after the person did
    (NOW + 5 * MINUTE, "Annie"),   # the person changed it after the CRM did
])
def test_most_recent_goes_by_field_times_not_the_record_time(
        engine: Engine, settings: Settings, crm_edit_at: datetime, winner: str) -> None:
    cid = add_connection(engine, "tiny")
    clock = MemoryClock(NOW - 30 * MINUTE, step=timedelta(0))
    crm = MemoryCRM(batch_size=10, clock=clock)
    contact = add_contact(engine, "ann@example.com", "Ann")
    cycle(engine, settings, cid, crm, NOW)
    [rid] = crm.records["contacts"]

    person_edits(engine, settings, contact, NOW + 10 * MINUTE, name="Annie")
    clock.advance(crm_edit_at - clock())
    crm.edit("contacts", rid, first_name="Anna")
    # a later hit moves the contact's record time past both edits: only field times tell
    hit_arrives(engine, contact, NOW + 30 * MINUTE)
    cycle(engine, settings, cid, crm, NOW + 60 * MINUTE)

    assert scalar(engine, "SELECT name FROM contacts") == winner
    assert crm.records["contacts"][rid]["first_name"] == winner
    again = cycle(engine, settings, cid, crm, NOW + 90 * MINUTE)  # settled: nothing moves
    assert "updated" not in again.counts.get("push:contact", {})
    assert "updated" not in again.counts.get("pull:contacts", {})


def test_a_pulled_value_is_logged_under_its_connection_and_not_sent_back(
        engine: Engine, settings: Settings) -> None:
    alpha, beta = add_connection(engine, "alpha"), add_connection(engine, "beta")
    crm_a, crm_b = MemoryCRM(batch_size=10), MemoryCRM(batch_size=10)
    contact = add_contact(engine, "bo@example.com", "Bo")
    cycle(engine, settings, alpha, crm_a, NOW)
    cycle(engine, settings, beta, crm_b, NOW)
    [rid_a] = crm_a.records["contacts"]
    [rid_b] = crm_b.records["contacts"]

    crm_a.edit("contacts", rid_a, first_name="Robert")
    cycle(engine, settings, alpha, crm_a, NOW + 60 * MINUTE)
    assert scalar(engine, "SELECT name FROM contacts") == "Robert"
    [change] = logged(engine)
    assert (change.hub_id, change.field, change.value, change.origin) == (
        str(contact), "name", "Robert", "alpha")

    sent = len(crm_a.orders)
    report = cycle(engine, settings, alpha, crm_a, NOW + 90 * MINUTE)
    assert len(crm_a.orders) == sent  # not pushed back to the CRM it came from
    assert "updated" not in report.counts.get("push:contact", {})
    cycle(engine, settings, beta, crm_b, NOW + 90 * MINUTE)
    assert crm_b.records["contacts"][rid_b]["first_name"] == "Robert"  # the other CRM gets it


def test_a_change_pulled_by_another_connection_counts_as_a_hub_change_with_its_time(
        engine: Engine, settings: Settings) -> None:
    """For connection beta, a value alpha pulled is a hub change made when alpha pulled it:
    a change in beta's CRM made after that wins, even though a hit moved the record later."""
    alpha, beta = add_connection(engine, "alpha"), add_connection(engine, "beta")
    crm_a = MemoryCRM(batch_size=10)
    clock_b = MemoryClock(NOW - 30 * MINUTE, step=timedelta(0))
    crm_b = MemoryCRM(batch_size=10, clock=clock_b)
    contact = add_contact(engine, "cy@example.com", "Cy")
    cycle(engine, settings, alpha, crm_a, NOW)
    cycle(engine, settings, beta, crm_b, NOW)
    [rid_a] = crm_a.records["contacts"]
    [rid_b] = crm_b.records["contacts"]

    crm_a.edit("contacts", rid_a, first_name="Cyrus")
    cycle(engine, settings, alpha, crm_a, NOW + 10 * MINUTE)  # the hub takes it at +10 min
    clock_b.advance(NOW + 20 * MINUTE - clock_b())
    crm_b.edit("contacts", rid_b, first_name="Cyril")
    hit_arrives(engine, contact, NOW + 30 * MINUTE)
    cycle(engine, settings, beta, crm_b, NOW + 60 * MINUTE)
    assert scalar(engine, "SELECT name FROM contacts") == "Cyril"
    assert crm_b.records["contacts"][rid_b]["first_name"] == "Cyril"


def test_the_log_is_pruned_once_every_connection_has_passed_a_change(
        engine: Engine, settings: Settings) -> None:
    alpha, beta = add_connection(engine, "alpha"), add_connection(engine, "beta")
    crm_a, crm_b = MemoryCRM(batch_size=10), MemoryCRM(batch_size=10)
    contact = add_contact(engine, "di@example.com", "Di")
    cycle(engine, settings, alpha, crm_a, NOW)
    cycle(engine, settings, beta, crm_b, NOW)

    person_edits(engine, settings, contact, NOW + 10 * MINUTE, name="Diana")
    cycle(engine, settings, alpha, crm_a, NOW + 60 * MINUTE)
    assert [c.value for c in logged(engine)] == ["Diana"]  # beta has not seen it yet

    person_edits(engine, settings, contact, NOW + 90 * MINUTE, name="Dina")
    cycle(engine, settings, beta, crm_b, NOW + 120 * MINUTE)
    # both passed the first change; alpha has not passed the second yet
    assert [c.value for c in logged(engine)] == ["Dina"]
    cycle(engine, settings, alpha, crm_a, NOW + 150 * MINUTE)
    assert logged(engine) == []
    assert crm_a.records["contacts"]["1"]["first_name"] == "Dina"


def test_the_age_limit_prunes_what_a_connection_that_stopped_syncing_never_passed(
        engine: Engine, settings: Settings) -> None:
    settings.sync.change_log_days = 30
    alpha, beta = add_connection(engine, "alpha"), add_connection(engine, "beta")
    crm_a, crm_b = MemoryCRM(batch_size=10), MemoryCRM(batch_size=10)
    contact = add_contact(engine, "ed@example.com", "Ed")
    cycle(engine, settings, alpha, crm_a, NOW)
    cycle(engine, settings, beta, crm_b, NOW)  # beta never syncs again

    day = timedelta(days=1)
    person_edits(engine, settings, contact, NOW + 1 * day, name="Eddie")
    person_edits(engine, settings, contact, NOW + 40 * day, name="Edward")
    cycle(engine, settings, alpha, crm_a, NOW + 45 * day)
    assert [c.value for c in logged(engine)] == ["Edward"]  # older than 30 days: gone

    with engine.begin() as conn:  # a disabled connection holds nothing back
        conn.execute(update(connections).where(connections.c.id == beta).values(enabled=False))
    cycle(engine, settings, alpha, crm_a, NOW + 46 * day)
    assert logged(engine) == []


def test_pruning_deletes_in_batches_until_done(engine: Engine) -> None:
    with engine.begin() as conn:
        for i in range(7):
            field_changes.record(conn, "contact", str(i), {"name": f"N{i}"}, NOW + i * MINUTE)
        field_changes.record(conn, "contact", "9", {"name": "later"}, NOW + 60 * MINUTE)
    gone = changelog.prune(engine, "contact", NOW + 30 * MINUTE, timedelta(days=90), batch=2)
    assert gone == 7
    assert [c.value for c in logged(engine)] == ["later"]  # made after the cycle started


def test_the_log_is_read_once_per_page_and_not_at_all_while_empty(
        engine: Engine, settings: Settings) -> None:
    cid = add_connection(engine, "tiny")
    crm = MemoryCRM(batch_size=10)
    ids = [add_contact(engine, f"p{i}@example.com", f"P{i}") for i in range(12)]
    reads: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM field_changes" in statement and "GROUP BY" in statement:
            reads.append(statement)

    cycle(engine, settings, cid, crm, NOW)
    for rid in crm.records["contacts"]:
        crm.edit("contacts", rid, first_name=f"CRM {rid}")
    cycle(engine, settings, cid, crm, NOW + 60 * MINUTE)
    assert reads == []  # nothing logged yet: a first sync reads no log

    for contact in ids[:3]:
        person_edits(engine, settings, contact, NOW + 70 * MINUTE, email=f"x{contact}@ex.com")
    for rid in crm.records["contacts"]:
        crm.edit("contacts", rid, first_name=f"CRM again {rid}")
    cycle(engine, settings, cid, crm, NOW + 120 * MINUTE)
    assert len(reads) == 1  # one page of 12 linked records: one query


def test_hub_time_is_the_field_time_only_when_it_is_later_than_the_last_sync() -> None:
    record_time, synced = NOW + 50 * MINUTE, NOW
    times = {"name": NOW + 10 * MINUTE, "email": NOW - MINUTE}
    assert changelog.hub_time(times, "name", synced, record_time) == NOW + 10 * MINUTE
    assert changelog.hub_time(times, "email", synced, record_time) == record_time
    assert changelog.hub_time(times, "phone", synced, record_time) == record_time
    assert changelog.hub_time(None, "name", synced, record_time) == record_time


def test_api_edits_of_an_organisation_log_their_synced_fields(
        hub: Hub, client: TestClient, auth: dict[str, str]) -> None:
    with hub.engine.begin() as conn:
        world = seed_world(conn, now=datetime.now(UTC), decay=hub.decay)
    globex = world["globex"]
    before = datetime.now(UTC)
    r = client.patch(f"/api/v1/organisations/{globex}", headers=auth,
                     json={"name": "Globex Corporation", "owner": "Bob Smith",
                           "type": "company"})
    assert r.status_code == 200, r.text
    changes = logged(hub.engine)
    assert {(c.hub_id, c.field, c.value, c.origin) for c in changes} == {
        (str(globex), "name", "Globex Corporation", None),
        (str(globex), "owner", "Bob Smith", None)}  # the type is not a synced field
    assert all(c.changed_at >= before for c in changes)
    client.patch(f"/api/v1/organisations/{globex}", headers=auth, json={"owner": "Bob Smith"})
    assert len(logged(hub.engine)) == 2  # the same owner again changes nothing


def test_a_merge_logs_the_values_the_survivor_takes(engine: Engine) -> None:
    with engine.begin() as conn:
        world = seed_world(conn, now=datetime.now(UTC))
        survivor, source = world["globex"], world["acme"]
        conn.execute(update(organisations).where(organisations.c.id == survivor)
                     .values(phone=None))
        conn.execute(update(organisations).where(organisations.c.id == source)
                     .values(phone="+44 20 7946 0000"))
        orgs.merge(conn, source, survivor)
    assert {(c.hub_id, c.field, c.value) for c in logged(engine) if c.field == "phone"} == {
        (str(survivor), "phone", "+44 20 7946 0000")}


def test_a_name_given_at_identification_fills_a_missing_one_and_is_logged(
        engine: Engine) -> None:
    contact = add_contact(engine, "fay@example.com", "Fay")
    with engine.begin() as conn:
        conn.execute(update(contacts).where(contacts.c.id == contact).values(name=None))
        get_or_create_contact(conn, Identity(email="fay@example.com", name="Fay Wray"), NOW)
        get_or_create_contact(conn, Identity(email="fay@example.com", name="Other"), NOW)
    assert scalar(engine, "SELECT name FROM contacts") == "Fay Wray"  # only fills a blank
    assert [(c.field, c.value, c.origin, c.changed_at) for c in logged(engine)] == [
        ("name", "Fay Wray", None, NOW)]


def test_erasing_a_contact_erases_its_logged_changes(engine: Engine,
                                                     settings: Settings) -> None:
    gone = add_contact(engine, "gus@example.com", "Gus")
    kept = add_contact(engine, "hal@example.com", "Hal")
    person_edits(engine, settings, gone, NOW, email="gus@new.example.com")
    person_edits(engine, settings, kept, NOW, name="Hal 9000")
    with engine.begin() as conn:
        erase_contact(conn, "gus@new.example.com", DECAY)
    assert [(c.hub_id, c.value) for c in logged(engine)] == [(str(kept), "Hal 9000")]
