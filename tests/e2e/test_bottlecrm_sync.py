"""The sync engine end to end against a real BottleCRM server, through the CLI a person uses.

BottleCRM runs as a subprocess on 127.0.0.1 (tests/bottlecrm_peer.py); after each scenario the
records are checked in BottleCRM through its own API.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, insert, update

from leadbridge.connectors.bottlecrm import BottleCRMClient
from leadbridge.store.tables import contacts
from support import scalar

NOW = datetime.now(UTC)


@pytest.fixture
def run(bottlecrm_cli: Any) -> Any:
    return bottlecrm_cli({"LEADBRIDGE_SECRET_KEY": "e2e-sync-secret"})



def add_contact(engine: Engine, email: str, name: str) -> int:
    with engine.begin() as conn:
        return int(conn.execute(insert(contacts).values(
            email=email, name=name, created_at=NOW, updated_at=NOW, hit_count=0,
            score_weight=0.0).returning(contacts.c.id)).scalar_one())


def tag() -> str:
    return secrets.token_hex(4)


def test_first_full_sync_then_changes_on_both_sides(run: Any, crm: BottleCRMClient,
                                                    engine: Engine) -> None:
    t = tag()
    mine = {add_contact(engine, f"p{i}.{t}@example.com", f"Ann{t}{i}"): i for i in range(3)}
    first = run("sync", "bottle")
    assert first.exit_code == 0, first.output
    for i in range(3):
        found = crm.find("contacts", f"p{i}.{t}@example.com")
        assert found is not None and found["first_name"] == f"Ann{t}{i}"
    links = scalar(engine, "SELECT count(*) FROM object_links WHERE remote_id NOT LIKE 'p%'")
    assert links >= 3
    # the same cycle again creates nothing new in BottleCRM
    again = run("sync", "bottle")
    assert again.exit_code == 0 and "created" not in again.output.split("push:contact")[-1]
    assert sum(1 for r in crm.list("contacts") if t in r["email"]) == 3
    # a change in BottleCRM reaches the hub; a change in the hub reaches BottleCRM
    record = crm.find("contacts", f"p0.{t}@example.com")
    assert record is not None
    crm.update("contacts", int(record["id"]), {"first_name": f"Renamed{t}"})
    hub_id = next(k for k, v in mine.items() if v == 1)
    with engine.begin() as conn:
        conn.execute(update(contacts).where(contacts.c.id == hub_id)
                     .values(name=f"Edited{t}", updated_at=datetime.now(UTC)))
    third = run("sync", "bottle")
    assert third.exit_code == 0, third.output
    assert scalar(engine, "SELECT name FROM contacts WHERE email = :e",
                  e=f"p0.{t}@example.com") == f"Renamed{t}"
    edited = crm.find("contacts", f"p1.{t}@example.com")
    assert edited is not None and edited["first_name"] == f"Edited{t}"


def test_email_changed_in_bottlecrm_follows_the_link(run: Any, crm: BottleCRMClient,
                                                     engine: Engine) -> None:
    t = tag()
    add_contact(engine, f"old.{t}@example.com", f"Cy{t}")
    assert run("sync", "bottle").exit_code == 0
    record = crm.find("contacts", f"old.{t}@example.com")
    assert record is not None
    crm.update("contacts", int(record["id"]), {"email": f"new.{t}@example.com"})
    assert run("sync", "bottle").exit_code == 0
    assert scalar(engine, "SELECT count(*) FROM contacts WHERE email LIKE :e",
                  e=f"%.{t}@example.com") == 1
    assert scalar(engine, "SELECT email FROM contacts WHERE name = :n", n=f"Cy{t}") == \
        f"new.{t}@example.com"
    assert sum(1 for r in crm.list("contacts") if t in r["email"]) == 1


def test_dry_run_against_bottlecrm_writes_nothing(run: Any, crm: BottleCRMClient,
                                                  engine: Engine) -> None:
    t = tag()
    add_contact(engine, f"dry.{t}@example.com", f"Dee{t}")
    plan = run("sync", "bottle", "--dry-run")
    assert plan.exit_code == 0 and "create" in plan.output
    assert crm.find("contacts", f"dry.{t}@example.com") is None
    assert scalar(engine, "SELECT count(*) FROM object_links") == 0
