"""The sync engine against a small CRM behind the connector contract, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select, update

from leadbridge.config import Settings
from leadbridge.connectors.base import ConnectorError
from leadbridge.connectors.memory import MemoryCRM
from leadbridge.store.tables import connections, contacts, object_links
from leadbridge.sync import errorqueue
from leadbridge.sync.engine import SyncEngine
from leadbridge.sync.mapping import MappingManual
from support import rows, scalar

NOW = datetime(2026, 11, 20, tzinfo=UTC)

MANUAL = MappingManual.model_validate({"objects": [{
    "hub": "contact", "crm": "contacts", "match": ["email"], "create_in_hub": True,
    "fields": [
        {"hub": "email", "crm": "email"},
        {"hub": "name", "crm": "first_name", "rule": "most_recent"},
        {"hub": "score", "crm": "score", "direction": "to_crm"},
    ]}]})


@pytest.fixture
def connection_id(engine: Engine) -> int:
    with engine.begin() as conn:
        return int(conn.execute(insert(connections).values(
            name="tiny", kind="memory", settings={}, created_at=NOW, updated_at=NOW,
            enabled=True).returning(connections.c.id)).scalar_one())


def add_contact(engine: Engine, email: str, name: str | None = None) -> int:
    with engine.begin() as conn:
        return int(conn.execute(insert(contacts).values(
            email=email, name=name, created_at=NOW, updated_at=NOW, hit_count=0,
            score_weight=0.0).returning(contacts.c.id)).scalar_one())


def sync(engine: Engine, settings: Settings, cid: int, crm: MemoryCRM, **kw: object) -> SyncEngine:
    clock = iter(NOW + timedelta(minutes=i) for i in range(10_000))
    return SyncEngine(engine, settings, cid, crm, MANUAL, sleep=lambda s: None,
                      clock=lambda: next(clock), **kw)  # type: ignore[arg-type]


def test_first_full_sync_creates_links_and_reports_counts(engine: Engine, settings: Settings,
                                                          connection_id: int) -> None:
    crm = MemoryCRM(batch_size=10)
    for i in range(25):
        add_contact(engine, f"p{i}@example.com", f"P{i}")
    report = sync(engine, settings, connection_id, crm).run()
    assert report.status == "ok" and report.counts["push:contact"]["created"] == 25
    assert len(crm.records["contacts"]) == 25
    assert scalar(engine, "SELECT count(*) FROM object_links") == 25
    assert {r["email"] for r in crm.records["contacts"].values()} == {
        f"p{i}@example.com" for i in range(25)}
    run = rows(engine, "SELECT status, api_calls FROM sync_runs")[0]
    assert run.status == "ok" and run.api_calls == report.api_calls
    # batches of 10: 3 creates + 1 report page
    assert report.api_calls == 4
    again = sync(engine, settings, connection_id, crm).run()
    assert "created" not in again.counts.get("push:contact", {})
    assert len(crm.records["contacts"]) == 25


def test_existing_crm_records_are_matched_not_duplicated(engine: Engine, settings: Settings,
                                                         connection_id: int) -> None:
    crm = MemoryCRM(batch_size=10)
    crm.put("contacts", email="ANN@example.com", first_name="Ann")
    add_contact(engine, "ann@example.com", None)
    sync(engine, settings, connection_id, crm).run()
    assert len(crm.records["contacts"]) == 1
    assert scalar(engine, "SELECT name FROM contacts") == "Ann"  # pulled into the blank
    assert scalar(engine, "SELECT remote_id FROM object_links") == "1"


def test_changes_on_both_sides_and_no_echo(engine: Engine, settings: Settings,
                                           connection_id: int) -> None:
    crm = MemoryCRM(batch_size=10)
    cid = add_contact(engine, "bo@example.com", "Bo")
    sync(engine, settings, connection_id, crm).run()
    [rid] = crm.records["contacts"]
    crm.edit("contacts", rid, first_name="Robert")
    sync(engine, settings, connection_id, crm).run()
    assert scalar(engine, "SELECT name FROM contacts") == "Robert"
    calls = crm.calls
    # the pulled value is not pushed back
    third = sync(engine, settings, connection_id, crm).run()
    assert "updated" not in third.counts.get("push:contact", {})
    assert crm.calls - calls == 1  # one report page, no apply
    with engine.begin() as conn:
        conn.execute(update(contacts).where(contacts.c.id == cid)
                     .values(name="Bobby", updated_at=NOW + timedelta(days=1)))
    sync(engine, settings, connection_id, crm).run()
    assert crm.records["contacts"][rid]["first_name"] == "Bobby"


def test_email_changed_in_the_crm_keeps_the_link(engine: Engine, settings: Settings,
                                                 connection_id: int) -> None:
    crm = MemoryCRM(batch_size=10)
    add_contact(engine, "old@example.com", "Cy")
    sync(engine, settings, connection_id, crm).run()
    [rid] = crm.records["contacts"]
    crm.edit("contacts", rid, email="new@example.com")
    sync(engine, settings, connection_id, crm).run()
    assert [r.email for r in rows(engine, "SELECT email FROM contacts")] == ["new@example.com"]
    assert len(crm.records["contacts"]) == 1
    assert scalar(engine, "SELECT count(*) FROM contacts") == 1


def test_crash_mid_batch_then_rerun_creates_no_duplicate(engine: Engine, settings: Settings,
                                                         connection_id: int) -> None:
    crm = MemoryCRM(batch_size=10)
    for i in range(6):
        add_contact(engine, f"c{i}@example.com", f"C{i}")
    crm.crash_after(3)
    with pytest.raises(RuntimeError):
        sync(engine, settings, connection_id, crm).run()
    assert len(crm.records["contacts"]) == 3  # three reached the CRM, none recorded
    assert scalar(engine, "SELECT count(*) FROM object_links WHERE remote_id LIKE 'pending:%'") == 6
    report = sync(engine, settings, connection_id, crm).run()
    assert report.counts["push:contact"]["recovered"] == 3
    assert len(crm.records["contacts"]) == 6
    assert {r["email"] for r in crm.records["contacts"].values()} == {
        f"c{i}@example.com" for i in range(6)}
    assert scalar(engine, "SELECT count(*) FROM object_links WHERE remote_id LIKE 'pending:%'") == 0


def test_crm_down_backs_off_then_catches_up(engine: Engine, settings: Settings,
                                            connection_id: int) -> None:
    crm = MemoryCRM(batch_size=10)
    add_contact(engine, "d@example.com", "D")
    crm.fail_next(2)
    slept: list[float] = []
    engine_ = sync(engine, settings, connection_id, crm)
    engine_.sleep = slept.append
    report = engine_.run()
    assert report.status == "ok" and len(slept) == 2 and min(slept) >= 2  # Retry-After honoured
    assert len(crm.records["contacts"]) == 1
    crm.fail_next(99)
    down = sync(engine, settings, connection_id, crm, max_attempts=3).run()
    assert down.status == "failed" and "503" in down.failures[0]
    with engine.connect() as conn:
        [job] = errorqueue.list_errors(conn)
    assert job.level == "job" and job.next_retry_at is not None
    crm.fail_next(0)
    add_contact(engine, "e@example.com", "E")
    back = sync(engine, settings, connection_id, crm).run()
    assert back.status == "ok" and len(crm.records["contacts"]) == 2


def test_refused_record_goes_to_the_error_queue_and_clears_when_it_syncs(
    engine: Engine, settings: Settings, connection_id: int
) -> None:
    crm = MemoryCRM(batch_size=10)
    cid = add_contact(engine, "bad@example.com", "X")
    crm.refuse("contacts", "email: invalid", ref=str(cid))
    report = sync(engine, settings, connection_id, crm).run()
    assert report.status == "partial" and report.counts["push:contact"]["failed"] == 1
    with engine.connect() as conn:
        [err] = errorqueue.list_errors(conn)
    assert err.record_key == str(cid) and "email" in err.reason and err.next_retry_at is None
    crm.clear_failures()
    with engine.begin() as conn:
        errorqueue.retry_now(conn, err.id, NOW)
    sync(engine, settings, connection_id, crm).run()
    with engine.connect() as conn:
        assert errorqueue.list_errors(conn) == []
    assert len(crm.records["contacts"]) == 1


def test_same_person_twice_in_one_batch_is_created_once(engine: Engine, settings: Settings,
                                                        connection_id: int) -> None:
    crm = MemoryCRM(batch_size=10)
    add_contact(engine, "twin@example.com", "A")
    with engine.begin() as conn:  # a second contact with the same email under a CRM id
        conn.execute(insert(contacts).values(email=None, external_id="T-2", name="B",
                                             created_at=NOW, updated_at=NOW, hit_count=0,
                                             score_weight=0.0))
        conn.execute(update(contacts).where(contacts.c.external_id == "T-2")
                     .values(email="TWIN@example.com"))
    sync(engine, settings, connection_id, crm).run()
    assert len(crm.records["contacts"]) == 1
    with engine.connect() as conn:
        [err] = errorqueue.list_errors(conn)
    assert "merge" in err.reason


def test_dry_run_plans_and_writes_nothing(engine: Engine, settings: Settings,
                                          connection_id: int) -> None:
    crm = MemoryCRM(batch_size=10)
    add_contact(engine, "f@example.com", "F")
    crm.put("contacts", email="g@example.com", first_name="G")
    report = sync(engine, settings, connection_id, crm, dry_run=True).run()
    ops = {(p.direction, p.operation) for p in report.plan}
    assert ("push", "create") in ops and ("pull", "create") in ops
    assert len(crm.records["contacts"]) == 1
    assert scalar(engine, "SELECT count(*) FROM object_links") == 0
    assert scalar(engine, "SELECT count(*) FROM sync_runs") == 0
    assert scalar(engine, "SELECT count(*) FROM contacts") == 1
    assert scalar(engine, "SELECT count(*) FROM sync_cursors") == 0


def test_pull_cursor_stops_at_the_cycle_start(engine: Engine, settings: Settings,
                                              connection_id: int) -> None:
    crm = MemoryCRM(batch_size=10)
    crm.put("contacts", email="h@example.com", first_name="H")
    sync(engine, settings, connection_id, crm).run()
    assert scalar(engine, "SELECT count(*) FROM contacts") == 1
    with engine.connect() as conn:
        stored = conn.execute(select(object_links.c.remote_id)).scalars().all()
    assert stored == ["1"]


def test_a_connector_that_answers_other_records_is_not_trusted(
    engine: Engine, settings: Settings, connection_id: int
) -> None:
    crm = MemoryCRM(batch_size=10)
    add_contact(engine, "i@example.com", "I")
    real_apply = crm.apply
    crm.apply = lambda order: list(reversed(real_apply(order))) + real_apply(order)  # type: ignore[method-assign]
    report = sync(engine, settings, connection_id, crm).run()
    assert report.status == "failed" and "different set" in report.failures[0]
    assert isinstance(ConnectorError("x"), Exception)


def test_adding_a_field_mapping_back_fills_existing_records(engine: Engine, settings: Settings,
                                                             connection_id: int) -> None:
    crm = MemoryCRM(batch_size=10)
    add_contact(engine, "j@example.com", "J")
    narrow = MappingManual.model_validate({"objects": [{
        "hub": "contact", "crm": "contacts", "match": ["email"],
        "fields": [{"hub": "email", "crm": "email"}]}]})
    later = iter(NOW + timedelta(days=1, minutes=i) for i in range(100))
    SyncEngine(engine, settings, connection_id, crm, narrow, clock=lambda: next(later)).run()
    [rid] = crm.records["contacts"]
    assert "first_name" not in crm.records["contacts"][rid]
    # the record has not changed since the first cycle, yet the new field reaches it
    clock = iter(NOW + timedelta(days=2, minutes=i) for i in range(100))
    SyncEngine(engine, settings, connection_id, crm, MANUAL, clock=lambda: next(clock)).run()
    assert crm.records["contacts"][rid]["first_name"] == "J"
    assert crm.records["contacts"][rid]["score"] == 0


def test_errors_left_for_14_days_are_dismissed_with_a_reason(engine: Engine, settings: Settings,
                                                             connection_id: int) -> None:
    with engine.begin() as conn:
        errorqueue.record(conn, connection_id, level="record", direction="push",
                          object="contact", record_key="9", reason="email: invalid",
                          now=NOW - timedelta(days=15), retriable=False)
    sync(engine, settings, connection_id, MemoryCRM(batch_size=10)).run()
    with engine.connect() as conn:
        [err] = errorqueue.list_errors(conn, status=None)
    assert err.status == "dismissed" and "14 days" in err.reason
