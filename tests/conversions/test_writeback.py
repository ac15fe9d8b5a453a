"""Matched conversions' channel, source and campaign written to CRM records (memory CRM)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select

from attribution_crm import Cycles, memory_crm
from attribution_seed import T0, H, add_hits, call, convert, marketing_source, visitor
from leadbridge.config import ConversionsSettings, GoalSettings, Settings
from leadbridge.connectors.base import Outcome
from leadbridge.conversions.attribution import reattribute
from leadbridge.conversions.writeback import ref_rows
from leadbridge.store.tables import conversions

NO_GOALS = ConversionsSettings()
TWO = (H(0, "organic_search", "https://www.google.com/"),
       H(60, "email", None, "april", "newsletter"))


def marketing(crm: object, obj: str, rid: str) -> tuple[object, object, object]:
    fields = crm.get(obj, rid).fields  # type: ignore[attr-defined]
    return fields.get("lb_channel"), fields.get("lb_source"), fields.get("lb_campaign")


def test_an_imported_conversion_is_written_to_the_lead_carrying_its_visitor_id(
        engine: Engine, settings: Settings) -> None:
    with engine.begin() as conn:
        bv = visitor(conn, "aa01", *TWO)
    crm = memory_crm()
    lead = crm.put("leads", email="ann@example.com", lb_visitor_id="AA01")
    other = crm.put("leads", email="bob@example.com")
    cycles = Cycles(engine, settings, crm, NO_GOALS)
    cycles.run()
    assert marketing(crm, "leads", lead) == (None, None, None)  # nothing converted yet
    with engine.begin() as conn:
        convert(conn, T0 + timedelta(hours=2), bv=bv, visitor_key="aa01")
    report = cycles.run()
    assert report.counts["conversions:leads"]["updated"] == 1
    assert marketing(crm, "leads", lead) == ("email", "newsletter", "april")  # last touch
    assert marketing(crm, "leads", other) == (None, None, None)
    orders = len(crm.orders)
    cycles.run()
    assert len(crm.orders) == orders  # written once: nothing is sent again


def test_the_configured_model_picks_the_touch_written(engine: Engine,
                                                      settings: Settings) -> None:
    with engine.begin() as conn:
        bv = visitor(conn, "aa02", *TWO)
        convert(conn, T0 + timedelta(hours=2), bv=bv, visitor_key="aa02")
    crm = memory_crm()
    contact = crm.put("contacts", email="c@example.com", lb_visitor_id="aa02")
    Cycles(engine, settings, crm, ConversionsSettings(writeback_model="first_touch")).run()
    assert marketing(crm, "contacts", contact) == ("organic_search", "google.com", "(none)")


def test_a_call_reference_typed_into_a_contact_gets_the_calls_source(
        engine: Engine, settings: Settings) -> None:
    with engine.begin() as conn:
        ms = marketing_source(conn, "Print ad", "+442071838752", channel="referral",
                              source="magazine", campaign="winter")
        call_id = call(conn, "CALL-42", "+442071838752", ms)
        convert(conn, T0, call_id=call_id, ms=ms, call_ref="CALL-42")
    crm = memory_crm()
    contact = crm.put("contacts", email="d@example.com", lb_call_ref=" CALL-42 ")
    Cycles(engine, settings, crm, NO_GOALS).run()
    assert marketing(crm, "contacts", contact) == ("referral", "magazine", "winter")


def test_a_newer_conversion_or_new_credit_is_written_again(engine: Engine,
                                                           settings: Settings) -> None:
    with engine.begin() as conn:
        bv = visitor(conn, "aa03", H(0, "referral", "https://a.example/"))
        first = convert(conn, T0 + timedelta(hours=1), bv=bv, visitor_key="aa03")
    crm = memory_crm()
    lead = crm.put("leads", email="e@example.com", lb_visitor_id="aa03")
    cycles = Cycles(engine, settings, crm, NO_GOALS)
    cycles.run()
    assert marketing(crm, "leads", lead)[1] == "a.example"
    with engine.begin() as conn:
        add_hits(conn, bv, H(120, "social", "https://t.co/"))
        convert(conn, T0 + timedelta(hours=3), bv=bv, visitor_key="aa03")
    cycles.run()
    assert marketing(crm, "leads", lead)[1] == "t.co"
    with engine.begin() as conn:  # a late hit makes the first conversion's credit change...
        add_hits(conn, bv, H(30, "email", None, "late", "mailer"))
        reattribute(conn, [first])
    cycles.run()  # ...but the record shows its latest conversion, which did not change
    assert marketing(crm, "leads", lead)[1] == "t.co"
    with engine.begin() as conn:
        latest = conn.execute(select(conversions.c.id).order_by(
            conversions.c.occurred_at.desc())).scalars().first()
        assert latest is not None
        add_hits(conn, bv, H(150, "email", None, "late", "mailer"))
        reattribute(conn, [latest])
    cycles.run()
    assert marketing(crm, "leads", lead) == ("email", "mailer", "late")


def test_a_refused_write_keeps_its_reason_and_is_not_retried_until_it_changes(
        engine: Engine, settings: Settings) -> None:
    with engine.begin() as conn:
        bv = visitor(conn, "aa04", H(0, "direct"))
        convert(conn, T0 + timedelta(hours=1), bv=bv, visitor_key="aa04")
    crm = memory_crm()
    lead = crm.put("leads", email="f@example.com", lb_visitor_id="aa04")
    crm.refuse("leads", "lb_channel: read-only in this CRM", remote_id=lead)
    cycles = Cycles(engine, settings, crm, NO_GOALS)
    report = cycles.run()
    assert report.status == "partial" and report.counts["conversions:leads"]["failed"] == 1
    with engine.connect() as conn:
        row = ref_rows(conn, cycles.connection_id)[("leads", lead)]
    assert row.write_error == "lb_channel: read-only in this CRM" and not row.due
    orders = len(crm.orders)
    cycles.run()
    assert len(crm.orders) == orders


def test_a_deleted_record_is_forgotten_and_one_without_ids_dropped(
        engine: Engine, settings: Settings) -> None:
    with engine.begin() as conn:
        bv = visitor(conn, "aa05", H(0, "direct"))
    crm = memory_crm()
    gone = crm.put("leads", email="g@example.com", lb_visitor_id="aa05")
    cleared = crm.put("contacts", email="h@example.com", lb_visitor_id="aa05")
    cycles = Cycles(engine, settings, crm, NO_GOALS)
    cycles.run()
    with engine.connect() as conn:
        assert set(ref_rows(conn, cycles.connection_id)) == {("leads", gone),
                                                             ("contacts", cleared)}
    crm.remove("leads", gone)
    crm.edit("contacts", cleared, lb_visitor_id="")
    with engine.begin() as conn:
        convert(conn, T0 + timedelta(hours=1), bv=bv, visitor_key="aa05")
    cycles.run()
    with engine.connect() as conn:
        assert ref_rows(conn, cycles.connection_id) == {}
    assert marketing(crm, "contacts", cleared) == (None, None, None)


def test_the_opportunity_reaching_a_goal_shows_its_attribution(
        engine: Engine, settings: Settings) -> None:
    with engine.begin() as conn:
        visitor(conn, "aa06", *TWO)
    crm = memory_crm()
    opp = crm.put("opportunities", name="Won", stage="Negotiation", amount=10,
                  lb_visitor_id="aa06")
    goals = ConversionsSettings(goals={"Closed Won": GoalSettings(currency="EUR")})
    cycles = Cycles(engine, settings, crm, goals)
    cycles.run()
    crm.edit("opportunities", opp, stage="Closed Won")
    report = cycles.run()
    assert report.counts["conversions:opportunities"][Outcome.UPDATED.value] == 1
    assert marketing(crm, "opportunities", opp) == ("email", "newsletter", "april")


def test_a_cycle_whose_crm_failed_leaves_the_conversions_work_to_the_next(
        engine: Engine, settings: Settings) -> None:
    with engine.begin() as conn:
        bv = visitor(conn, "aa07", H(0, "direct"))
        convert(conn, T0 + timedelta(hours=1), bv=bv, visitor_key="aa07")
    crm = memory_crm()
    lead = crm.put("leads", email="i@example.com", lb_visitor_id="aa07")
    cycles = Cycles(engine, settings, crm, NO_GOALS)
    crm.fail_next(1, retriable=False)
    calls = crm.calls
    report = cycles.run()
    assert report.status == "failed" and crm.calls - calls == 1  # nothing asked after that
    with engine.connect() as conn:
        assert ref_rows(conn, cycles.connection_id) == {}
    assert cycles.run().status == "ok"
    assert marketing(crm, "leads", lead) == ("direct", "(none)", "(none)")
