"""Website Visitors in a real BottleCRM, through the CLI a person uses: an account created from
a visitor, an account's website-visitor link changed in BottleCRM, and the visitor's values
and hits after new visits. Records are checked in BottleCRM through its own API.

BottleCRM runs as a subprocess on 127.0.0.1 (tests/bottlecrm_peer.py) and is shared by the
whole session, so every name here carries a fresh tag.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import Engine

from leadbridge.connectors.base import Operation, OrderItem, Outcome
from leadbridge.connectors.bottlecrm import BottleCRMClient, BottleCRMConnector
from leadbridge.connectors.bottlecrm.visitorblock import read_block
from leadbridge.scoring.ruleset import DECAY_EPOCH
from leadbridge.store.state import set_state
from visitor_seed import DECAY, add_org
from visitor_world import account_of, contact, visit

PUBLIC_URL = "https://hub.example.com"


@pytest.fixture
def run(bottlecrm_cli: Any, engine: Engine) -> Any:
    with engine.begin() as conn:
        set_state(conn, DECAY_EPOCH, DECAY.epoch.isoformat())
    return bottlecrm_cli({"LEADBRIDGE_SECRET_KEY": "e2e-visitors-secret",
                          "LEADBRIDGE_PUBLIC_URL": PUBLIC_URL})



def visitor(engine: Engine, name: str, score: float, **values: Any) -> tuple[int, str]:
    with engine.begin() as conn:
        org_id, token = add_org(conn, name, score=score, days_ago=1, now=datetime.now(UTC),
                                **values)
    return org_id, f"{PUBLIC_URL}/p/{token}"


def said(result: Result) -> str:
    return " ".join(result.output.translate(str.maketrans("", "", "│╭╮╰╯─")).split())


def block(crm: BottleCRMClient, account_id: str) -> dict[str, Any]:
    return read_block(crm.get("accounts", int(account_id)).get("description"))[1]


def test_create_account_from_a_visitor_end_to_end(run: Any, crm: BottleCRMClient,
                                                  engine: Engine) -> None:
    t = secrets.token_hex(4)
    initech, link = visitor(engine, f"Initech {t}", 25, type="education",
                            domain=f"initech-{t}.example", country="GB",
                            phone="+14155552671", address="1 Loop Road, Austin")

    first = run("visitors", "create-account", str(initech), "--connection", "bottle")

    assert first.exit_code == 0, first.output
    account_id = account_of(engine, initech)
    assert account_id is not None and f"created accounts {account_id} in bottle" in said(first)
    record = crm.get("accounts", int(account_id))
    assert record["name"] == f"Initech {t}"
    assert record["website"] == f"https://initech-{t}.example"
    assert record["billing_country"] == "GB"
    assert record["billing_address_line"] == "1 Loop Road, Austin"
    assert record["phone"] == "+14155552671"
    values = block(crm, account_id)
    assert values["website_visitor_score"] == 25 and values["website_visitor_band"] == "warm"
    assert values["website_visitor_permalink"] == link
    assert values["website_visitor_last_visit"].endswith("Z")

    again = run("visitors", "create-account", str(initech))
    assert again.exit_code == 0, again.output
    assert f"already associated with accounts {account_id} in bottle" in said(again)
    assert [r["id"] for r in crm.list("accounts", filters={"name": f"Initech {t}"})] == [
        int(account_id)]


def test_an_existing_account_of_the_same_name_is_associated_not_doubled(
        run: Any, crm: BottleCRMClient, engine: Engine) -> None:
    t = secrets.token_hex(4)
    existing = crm.create("accounts", {
        "name": f"Globex {t}", "email": "office@globex.example", "description": "Key client.",
        "billing_address_line": "1 Market Street", "billing_street": "Market Street",
        "billing_city": "Leeds", "billing_state": "West Yorkshire",
        "billing_postcode": "LS1 1AA", "billing_country": "GB"})
    globex, link = visitor(engine, f"globex {t}", 60, country="DE")

    result = run("visitors", "create-account", str(globex))

    assert result.exit_code == 0, result.output
    assert f"existing accounts {existing} in bottle (same name)" in said(result)
    assert account_of(engine, globex) == str(existing)
    assert len(list(crm.list("accounts", filters={"name": f"Globex {t}"}))) == 1
    record = crm.get("accounts", existing)
    assert record["name"] == f"Globex {t}" and record["billing_country"] == "GB"  # kept
    text, values = read_block(record["description"])
    assert text == "Key client."  # the salesperson's text stays
    assert values["website_visitor_score"] == 60 and values["website_visitor_permalink"] == link


def test_a_visitor_lacking_what_bottlecrm_requires_gets_a_clear_error(
        run: Any, crm: BottleCRMClient, engine: Engine) -> None:
    t = secrets.token_hex(4)
    umbrella, _ = visitor(engine, f"Umbrella {t}", 10)  # no country
    result = run("visitors", "create-account", str(umbrella))
    assert result.exit_code == 2
    assert "needs billing_country" in said(result)
    assert list(crm.list("accounts", filters={"name": f"Umbrella {t}"})) == []


def test_an_account_link_changed_in_bottlecrm_is_followed_by_the_hub(
        run: Any, crm: BottleCRMClient, engine: Engine) -> None:
    t = secrets.token_hex(4)
    acme, _ = visitor(engine, f"Acme {t}", 70, country="GB", domain=f"acme-{t}.example")
    labs, labs_link = visitor(engine, f"Acme Labs {t}", 30, country="GB")
    assert run("visitors", "create-account", str(acme)).exit_code == 0
    assert run("visitors", "create-account", str(labs)).exit_code == 0
    acme_account, labs_account = account_of(engine, acme), account_of(engine, labs)
    assert acme_account and labs_account and acme_account != labs_account

    # a salesperson decides the Acme account is really Acme Labs: pastes its permalink
    record = crm.get("accounts", int(acme_account))
    text = record["description"].replace(block(crm, acme_account)["website_visitor_permalink"],
                                         labs_link)
    crm.update("accounts", int(acme_account), {"description": text})

    synced = run("sync", "bottle")
    assert synced.exit_code == 0, synced.output

    assert account_of(engine, labs) == acme_account, synced.output
    assert account_of(engine, acme) is None
    values = block(crm, acme_account)
    assert values["website_visitor_score"] == 30 and values["website_visitor_permalink"] == \
        labs_link
    again = run("sync", "bottle")  # settled: nothing moves back
    assert again.exit_code == 0, again.output
    assert account_of(engine, labs) == acme_account and account_of(engine, acme) is None


def test_visitor_values_and_hits_reach_bottlecrm_after_new_visits(
        run: Any, crm: BottleCRMClient, engine: Engine) -> None:
    t = secrets.token_hex(4)
    hooli, _ = visitor(engine, f"Hooli {t}", 5, country="US", domain=f"hooli-{t}.example")
    contact(engine, f"gavin.{t}@hooli.example", hooli, f"Gavin{t}")
    assert run("visitors", "create-account", str(hooli)).exit_code == 0
    account_id = account_of(engine, hooli)
    assert account_id is not None
    first = run("sync", "bottle")
    assert first.exit_code == 0, first.output
    assert block(crm, account_id)["website_visitor_score"] == 5

    now = datetime.now(UTC) - timedelta(minutes=1)
    visit(engine, hooli, now, score=10, hits=3, url=f"https://www.example.com/pricing-{t}",
          written_at=datetime.now(UTC))
    synced = run("sync", "bottle")
    assert synced.exit_code == 0, synced.output

    values = block(crm, account_id)
    assert values["website_visitor_score"] == 35 and values["website_visitor_band"] == "warm"
    assert values["website_visitor_last_visit"] == now.strftime("%Y-%m-%dT%H:%M:%SZ")
    person = crm.find("contacts", f"gavin.{t}@hooli.example")
    assert person is not None
    assert read_block(person["description"])[1]["website_visitor_score"] == 35
    tasks = [task for task in crm.list("tasks") if f"pricing-{t}" in task["title"]]
    assert len(tasks) == 3
    assert {task["status"] for task in tasks} == {"Completed"}
    assert {str(task["account"]) for task in tasks} == {account_id}

    assert run("sync", "bottle").exit_code == 0  # each hit goes once
    assert len([task for task in crm.list("tasks") if f"pricing-{t}" in task["title"]]) == 3


def test_the_connector_keeps_visitor_values_in_the_description_and_finds_by_domain(
        bottlecrm_api: BottleCRMClient) -> None:
    connector = BottleCRMConnector(bottlecrm_api)
    t = secrets.token_hex(4)
    required = {"email": "office@vandelay.example", "billing_address_line": "1 Main St",
                "billing_street": "Main St", "billing_city": "New York",
                "billing_state": "NY", "billing_postcode": "10001", "billing_country": "US"}
    (created,) = connector.apply([OrderItem("v", "accounts", Operation.CREATE, None, {
        **required, "name": f"Vandelay {t}", "domain": f"vandelay-{t}.example",
        "description": "Importers.", "website_visitor_score": 12,
        "website_visitor_band": "cold"})])
    assert created.outcome == Outcome.CREATED and created.remote_id
    account_id = int(created.remote_id)
    record = bottlecrm_api.get("accounts", account_id)
    assert record["website"] == f"https://vandelay-{t}.example"
    assert read_block(record["description"]) == ("Importers.", {
        "website_visitor_score": 12, "website_visitor_band": "cold",
        "website_visitor_last_visit": None, "website_visitor_permalink": None})

    found = connector.find("accounts", {"domain": f"VANDELAY-{t}.example"})
    assert [r.id for r in found] == [str(account_id)]
    assert found[0].fields["description"] == "Importers."
    assert connector.find("accounts", {"domain": f"other-{t}.example"}) == []

    (updated,) = connector.apply([OrderItem("v", "accounts", Operation.UPDATE,
                                            str(account_id), {"website_visitor_score": 13})])
    assert updated.outcome == Outcome.UPDATED
    text, values = read_block(bottlecrm_api.get("accounts", account_id)["description"])
    assert text == "Importers." and values["website_visitor_score"] == 13
    assert values["website_visitor_band"] == "cold"  # the other lines are kept

    # a salesperson rewrites the text: reported apart from the block
    current = bottlecrm_api.get("accounts", account_id)["description"]
    bottlecrm_api.update("accounts", account_id,
                         {"description": current.replace("Importers.", "Exporters too.")})
    (seen,) = connector.find("accounts", {"name": f"Vandelay {t}"})
    assert seen.fields["description"] == "Exporters too."
    assert seen.fields["website_visitor_score"] == 13
    assert seen.fields["domain"] == f"vandelay-{t}.example"
