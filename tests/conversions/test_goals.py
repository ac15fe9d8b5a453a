"""CRM stage changes recorded as conversions through configured goals (memory CRM)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select

from attribution_crm import Cycles, memory_crm
from attribution_seed import T0, H, call, marketing_source, visitor
from leadbridge.config import ConversionsSettings, GoalSettings, Settings
from leadbridge.conversions.attribution import credit_rows
from leadbridge.conversions.goals import goal_events, stage_key
from leadbridge.store.tables import conversions

credits_q = credit_rows()

GOALS = ConversionsSettings(goals={
    "CLOSED_WON": GoalSettings(action="sale", currency="EUR"),
    "Proposal": GoalSettings(action="quote", value=50, currency="GBP"),
})


def stored(engine: Engine) -> list[tuple[object, ...]]:
    c = conversions.c
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(c.action, c.amount, c.currency, c.source, c.transaction_ref, c.title,
                   c.browser_visitor_id, c.occurred_at).order_by(c.occurred_at, c.action))]


def test_an_opportunity_reaching_a_goal_stage_is_recorded_once_and_attributed(
        engine: Engine, settings: Settings) -> None:
    with engine.begin() as conn:
        bv = visitor(conn, "3f9a0c1d2e4b5a69", H(0, "paid_search", "https://www.google.com/",
                                                "spring", "google"))
    crm = memory_crm()
    opp = crm.put("opportunities", name="Acme deal", stage="Prospecting", amount=1200.5,
                  lb_visitor_id="3F9A0C1D2E4B5A69")
    cycles = Cycles(engine, settings, crm, GOALS)
    cycles.run()
    assert stored(engine) == []
    crm.edit("opportunities", opp, stage="Closed Won")
    won_at = crm.get("opportunities", opp).field_times["stage"]  # type: ignore[union-attr]
    report = cycles.run()
    assert report.status == "ok", report.failures
    assert stored(engine) == [("sale", Decimal("1200.5000"), "EUR", "crm",
                               f"crm:tiny:opportunities:{opp}:CLOSED_WON", "Acme deal", bv,
                               won_at)]
    with engine.connect() as conn:
        credit = conn.execute(select(credits_q.c.channel,
                                     credits_q.c.campaign)).all()
    assert [tuple(r) for r in credit] == [("paid_search", "spring")]
    # read again (and again after an unrelated change): still one conversion
    crm.edit("opportunities", opp, amount=9999)
    cycles.run()
    cycles.run()
    assert len(stored(engine)) == 1


def test_each_goal_stage_of_a_record_counts_once_with_its_own_value(
        engine: Engine, settings: Settings) -> None:
    with engine.begin() as conn:
        ms = marketing_source(conn, "Radio", "+442071838750", channel="campaign", source="fm")
        call(conn, "CALL-7", "+442071838750", ms)
    crm = memory_crm()
    opp = crm.put("opportunities", name="Call deal", stage="proposal", amount=10,
                  currency="usd", lb_call_ref="CALL-7")
    cycles = Cycles(engine, settings, crm, GOALS)
    cycles.run()
    crm.edit("opportunities", opp, stage="closed-won")
    cycles.run()
    got = [(r[0], r[1], r[2]) for r in stored(engine)]
    assert got == [("quote", Decimal("50.0000"), "GBP"), ("sale", Decimal("10.0000"), "USD")]
    with engine.connect() as conn:
        assert {tuple(r) for r in conn.execute(select(
            credits_q.c.channel, credits_q.c.source))} == {("campaign", "fm")}


def test_a_record_without_ids_waits_with_a_reason_until_it_carries_one(
        engine: Engine, settings: Settings) -> None:
    with engine.begin() as conn:
        visitor(conn, "77aa", H(0, "email", None, "nl", "mailer"))
    crm = memory_crm()
    opp = crm.put("opportunities", name="No ids", stage="Closed Won", amount=5)
    bad = crm.put("opportunities", name="Unknown", stage="Closed Won", amount=5,
                  lb_visitor_id="ffff0000", currency="EUR")
    cycles = Cycles(engine, settings, crm, GOALS)
    cycles.run()
    with engine.connect() as conn:
        events = goal_events(conn, cycles.connection_id)
    assert events[("opportunities", opp, "CLOSED_WON")].reason == (
        "the record carries no visitor id or call reference to match it to a visit or a call")
    assert events[("opportunities", bad, "CLOSED_WON")].reason.startswith(
        "unknown visitor id: ffff0000")
    assert stored(engine) == []
    crm.edit("opportunities", opp, lb_visitor_id="77AA")
    cycles.run()
    assert [r[0] for r in stored(engine)] == ["sale"]
    with engine.connect() as conn:
        events = goal_events(conn, cycles.connection_id)
    assert events[("opportunities", opp, "CLOSED_WON")].conversion_id is not None


def test_a_bad_amount_on_the_crm_record_is_a_reason_not_a_crash(
        engine: Engine, settings: Settings) -> None:
    with engine.begin() as conn:
        visitor(conn, "88bb", H(0, "direct"))
    crm = memory_crm()
    opp = crm.put("opportunities", name="Odd", stage="CLOSED WON", amount="12,5",
                  lb_visitor_id="88bb")
    cycles = Cycles(engine, settings, crm, GOALS)
    assert cycles.run().status == "ok"
    with engine.connect() as conn:
        reason = goal_events(conn, cycles.connection_id)[("opportunities", opp, "CLOSED_WON")]
    assert reason.reason == "bad amount: '12,5' is not a number (digits and a dot: 1234.50)"


@pytest.mark.parametrize("stage", ["CLOSED_WON", "Closed Won", "closed-won", " closed  won "])
def test_stages_compare_ignoring_case_spaces_and_underscores(stage: str) -> None:
    assert stage_key(stage) == stage_key("CLOSED WON")
    assert stage_key("CLOSED LOST") != stage_key("CLOSED WON")


def test_goal_time_comes_from_the_crm(engine: Engine, settings: Settings) -> None:
    with engine.begin() as conn:
        visitor(conn, "99cc", H(0, "referral", "https://a.example/"),
                H(60 * 24 * 2, "social", "https://t.co/"))  # two days later: after the goal
    crm = memory_crm()
    crm.put("opportunities", name="Early", stage="Closed Won", lb_visitor_id="99cc")
    Cycles(engine, settings, crm, GOALS).run()
    at = stored(engine)[0][-1]
    assert at is not None and T0 < at < T0 + timedelta(days=2)  # type: ignore[operator]
    with engine.connect() as conn:
        assert conn.execute(select(credits_q.c.source)).scalars().all() == [
            "a.example"]
