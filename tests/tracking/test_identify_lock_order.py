"""Row locks between writers. A batch that identifies a person locks its Website Visitors
before the person's contact, as every writer's totals do, so it cannot deadlock with another
writer adding to the same two; and the totals' locks do not wait for another writer's
foreign-key locks.

PostgreSQL only: its writers lock rows, and the order matters; SQLite's writers take turns
with one lock for the whole database.

The other writer is played by a connection that locks the Website Visitor, then updates the
contact. The batch's identification is held open at its most dangerous point: right after it
updated the contact, until the other writer holds the Website Visitor (or a second).
Before the fix, PostgreSQL found the deadlock and broke it.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from leadbridge.hub import Hub
from leadbridge.identify.contacts import Identity
from leadbridge.tracking import batch as batch_module
from leadbridge.tracking.batch import BatchWriter, PreparedHit
from leadbridge.tracking.groupcommit import GroupCommit
from leadbridge.tracking.request import TrackingRequest

COMPANY_IP = "198.51.100.20"  # Testclient Industries
UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
EMAIL = "reader@testclient.example"


@pytest.fixture
def db_url(pg_db_url: str) -> str:
    return pg_db_url


def _hit(hub: Hub, site_id: int, browser: int, moment: datetime,
         identity: Identity | None = None) -> PreparedHit:
    hit = hub.intake.prepare(TrackingRequest(
        site_id=site_id, url=f"https://www.example.com/{browser}", visitor_key=f"{browser:016x}",
        user_agent=UA, ip=COMPANY_IP), moment)
    hit.identity = identity
    return hit


def test_identification_locks_website_visitors_first(
        hub: Hub, site_id: int, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    commit = GroupCommit(hub.engine, BatchWriter(hub.decay))
    # browser 1 reads a page, unknown; browser 2 is the reader's and already identified
    assert commit.write_each_now([_hit(hub, site_id, 1, start),
                                  _hit(hub, site_id, 2, start, Identity(email=EMAIL))]) == [
        None, None]
    with hub.engine.connect() as conn:
        org = conn.execute(text("SELECT id FROM organisations WHERE name = "
                                "'Testclient Industries'")).scalar_one()
        contact = conn.execute(text("SELECT id FROM contacts")).scalar_one()

    contact_updated, visitor_locked = threading.Event(), threading.Event()
    original = batch_module.link_browser

    def link_then_hold(*args: Any) -> int:
        moved = original(*args)  # browser 1's earlier hit joins the contact: its row is locked
        contact_updated.set()
        visitor_locked.wait(1)
        return moved

    monkeypatch.setattr(batch_module, "link_browser", link_then_hold)
    other_errors: list[BaseException] = []

    def other_writer() -> None:
        try:
            with psycopg.connect(hub.settings.database_url.replace("+psycopg", "")) as con:
                contact_updated.wait(10)
                con.execute("SELECT 1 FROM organisations WHERE id = %s FOR UPDATE", (org,))
                visitor_locked.set()
                con.execute("UPDATE contacts SET hit_count = hit_count WHERE id = %s",
                            (contact,))
        except BaseException as exc:  # reported below
            other_errors.append(exc)

    other = threading.Thread(target=other_writer, daemon=True)
    other.start()
    try:
        with caplog.at_level(logging.ERROR, logger="leadbridge.tracking.groupcommit"):
            results = commit.write_each_now([
                _hit(hub, site_id, 1, start + timedelta(minutes=1), Identity(email=EMAIL))])
    finally:
        other.join(30)
        commit.close()
    assert not other.is_alive()
    assert other_errors == []
    assert results == [None]
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]  # stored at once
    with hub.engine.connect() as conn:
        stored = conn.execute(text("SELECT hit_count FROM contacts WHERE id = :c"),
                              {"c": contact}).scalar_one()
    assert stored == 3  # browser 2's hit, browser 1's earlier one and its new one


def test_key_share_locks_do_not_hold_up_the_totals(hub: Hub, site_id: int) -> None:
    """Another writer pointing a browser at the contact, or the contact at the Website
    Visitor, holds a key-share lock on that row (its foreign key) until it commits; the
    totals change no key, so they need not wait for it."""
    start = datetime.now(UTC) - timedelta(hours=1)
    commit = GroupCommit(hub.engine, BatchWriter(hub.decay))
    assert commit.write_each_now([_hit(hub, site_id, 2, start, Identity(email=EMAIL))]) == [
        None]
    with hub.engine.connect() as conn:
        org = conn.execute(text("SELECT id FROM organisations")).scalar_one()
        contact = conn.execute(text("SELECT id FROM contacts")).scalar_one()
    held, stored = threading.Event(), threading.Event()
    stored_while_held: list[bool] = []

    def other_writer() -> None:
        with psycopg.connect(hub.settings.database_url.replace("+psycopg", "")) as con:
            con.execute("SELECT 1 FROM contacts WHERE id = %s FOR KEY SHARE", (contact,))
            con.execute("SELECT 1 FROM organisations WHERE id = %s FOR KEY SHARE", (org,))
            held.set()
            stored_while_held.append(stored.wait(10))
            con.rollback()

    other = threading.Thread(target=other_writer, daemon=True)
    other.start()
    try:
        assert held.wait(10)
        results = commit.write_each_now([_hit(hub, site_id, 2, start + timedelta(minutes=1))])
        stored.set()
    finally:
        other.join(30)
        commit.close()
    assert not other.is_alive()
    assert results == [None]
    assert stored_while_held == [True]
    with hub.engine.connect() as conn:
        assert conn.execute(text("SELECT hit_count FROM contacts")).scalar_one() == 2
        assert conn.execute(text("SELECT hit_count FROM organisations")).scalar_one() == 2
