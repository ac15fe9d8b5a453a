"""CRM goals and attribution write-back against a real BottleCRM server, through the CLI.

An operator types a visitor id (or a call reference) into an opportunity's or a lead's
description; the opportunity reaching "CLOSED WON" becomes a conversion, credited to the
visitor's sessions, and the attribution is written back into the record's description.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from attribution_seed import H, call, convert, marketing_source, visitor
from leadbridge.connectors.bottlecrm import BottleCRMClient
from leadbridge.conversions.attribution import credit_rows
from leadbridge.store.tables import conversions

credits_q = credit_rows()

pytestmark = pytest.mark.e2e

CONFIG = """
[conversions.goals."CLOSED_WON"]
action = "sale"
currency = "EUR"
"""


@pytest.fixture
def run(bottlecrm_cli: Any, tmp_path: Path) -> Any:
    (tmp_path / "leadbridge.toml").write_text(CONFIG, encoding="utf-8")
    return bottlecrm_cli({"LEADBRIDGE_SECRET_KEY": "e2e-attribution-secret",
                          "LEADBRIDGE_CONFIG": str(tmp_path / "leadbridge.toml")})



def sync(run: Any) -> str:
    done = run("sync", "bottle")
    assert done.exit_code == 0, done.output
    return str(done.output)


def test_closed_won_opportunity_becomes_a_credited_conversion_written_back(
        run: Any, crm: BottleCRMClient, engine: Engine) -> None:
    key = secrets.token_hex(8)
    start = datetime.now(UTC) - timedelta(hours=5)
    with engine.begin() as conn:
        visitor(conn, key, H(0, "organic_search", "https://www.google.com/"),
                H(120, "paid_search", "https://www.google.com/", "autumn", "google"),
                start=start)
    name = f"Deal {key}"
    opp = crm.create("opportunities", {
        "name": name, "stage": "QUALIFICATION", "probability": 20, "amount": "1500.00",
        "currency": "USD", "description": f"Came through the web form\nvisitor id: {key}"})
    sync(run)
    with engine.connect() as conn:
        assert conn.execute(select(conversions.c.id)).all() == []
    crm.update("opportunities", opp, {"stage": "CLOSED WON"})
    sync(run)
    with engine.connect() as conn:
        stored = conn.execute(select(conversions.c.id, conversions.c.action,
                                     conversions.c.amount, conversions.c.currency,
                                     conversions.c.source, conversions.c.transaction_ref)).all()
        assert [tuple(r)[1:] for r in stored] == [
            ("sale", 1500, "USD", "crm", f"crm:bottle:opportunities:{opp}:CLOSED_WON")]
        touches = conn.execute(select(credits_q.c.channel, credits_q.c.w_last)
                               .order_by(credits_q.c.touch)).all()
        assert [tuple(t) for t in touches] == [("organic_search", 0.0), ("paid_search", 1.0)]
    described = crm.get("opportunities", opp)["description"]
    assert described.splitlines() == [
        "Came through the web form", f"visitor id: {key}", "",
        "LeadBridge channel: paid_search", "LeadBridge source: google",
        "LeadBridge campaign: autumn"]
    assert crm.get("opportunities", opp)["stage"] == "CLOSED WON"  # the rest is untouched
    sync(run)  # again: no second conversion, nothing rewritten
    with engine.connect() as conn:
        assert len(conn.execute(select(conversions.c.id)).all()) == 1
    assert crm.get("opportunities", opp)["description"] == described


def test_a_call_reference_typed_into_a_lead_gets_the_calls_source(
        run: Any, crm: BottleCRMClient, engine: Engine) -> None:
    ref = f"CALL-{secrets.token_hex(4)}"
    with engine.begin() as conn:
        ms = marketing_source(conn, f"Radio {ref}", "+442071838799", channel="campaign",
                              source="radio-fm", campaign="jingle")
        call_id = call(conn, ref, "+442071838799", ms)
        convert(conn, datetime.now(UTC) - timedelta(hours=1), call_id=call_id, ms=ms,
                call_ref=ref)
    lead = crm.create("leads", {"title": f"Caller {ref}", "status": "assigned",
                                "description": f"Call ref: {ref}"})
    out = sync(run)
    assert "conversions:leads" in out
    assert crm.get("leads", lead)["description"].splitlines() == [
        f"Call ref: {ref}", "", "LeadBridge channel: campaign", "LeadBridge source: radio-fm",
        "LeadBridge campaign: jingle"]
    reported = run("conversions", "crm-without-marketing", "--connection", "bottle")
    assert reported.exit_code == 0 and ref not in reported.output
