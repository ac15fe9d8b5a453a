"""MemoryCRM: the shared connector suite, then every failure it can be told to inject."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from connector_suite import ConnectorSuite, SuiteTarget, pages
from leadbridge.connectors.base import (
    ConnectorError,
    Operation,
    OrderItem,
    Outcome,
    ReportRequest,
)
from leadbridge.connectors.memory import MemoryClock, MemoryCRM, SimulatedCrash


def new_fields(obj: str, token: str) -> dict[str, Any]:
    fields: dict[str, dict[str, Any]] = {
        "accounts": {"name": f"Acme {token}", "domain": f"{token}.example"},
        "contacts": {"email": f"ann.{token}@example.com", "first_name": "Ann"},
        "leads": {"email": f"lee.{token}@example.com", "company": f"Lee {token} Ltd"},
        "tasks": {"subject": f"Call {token} back", "status": "open"},
    }
    return fields[obj]


def edit_fields(obj: str) -> dict[str, Any]:
    fields: dict[str, dict[str, Any]] = {
        "accounts": {"city": "York"}, "contacts": {"last_name": "Lee"},
        "leads": {"status": "working"}, "tasks": {"status": "done"}}
    return fields[obj]


class TestMemoryCRMContract(ConnectorSuite):
    objects = ("accounts", "contacts", "leads", "tasks")

    @pytest.fixture
    def target(self) -> SuiteTarget:
        crm = MemoryCRM(batch_size=3)
        return SuiteTarget(crm, new_fields, edit_fields, missing_id="999999",
                           reconnect=lambda: crm, now=crm.clock)


@pytest.fixture
def crm() -> MemoryCRM:
    return MemoryCRM(batch_size=5)


def create(ref: str, obj: str = "contacts", **fields: Any) -> OrderItem:
    return OrderItem(ref, obj, Operation.CREATE, fields=fields)


def update(ref: str, remote_id: str, obj: str = "contacts", **fields: Any) -> OrderItem:
    return OrderItem(ref, obj, Operation.UPDATE, remote_id, fields)


def report_all(crm: MemoryCRM, obj: str = "contacts", cursor: str | None = None) -> list[Any]:
    return [r for page in pages(crm, obj, crm.clock(), cursor=cursor) for r in page.records]


def test_the_next_calls_fail_retriably_with_retry_after_then_work(crm: MemoryCRM) -> None:
    crm.fail_next(2, retry_after=30)
    for _ in range(2):
        with pytest.raises(ConnectorError) as caught:
            crm.apply([create("a", email="a@example.com")])
        assert caught.value.retriable and caught.value.retry_after == 30
        assert "503" in str(caught.value)
    assert crm.records["contacts"] == {}
    [result] = crm.apply([create("a", email="a@example.com")])
    assert result.outcome == Outcome.CREATED
    assert crm.calls == 3  # a refused request is still a request


def test_an_outage_hits_every_contract_call_and_can_be_fatal(crm: MemoryCRM) -> None:
    crm.fail_next(4, retriable=False, message="credentials revoked")
    calls: list[Callable[[], object]] = [
        crm.test,
        lambda: crm.find("contacts", {"email": "x@example.com"}),
        lambda: crm.report(ReportRequest("contacts", None, crm.clock(), 10, ())),
        lambda: crm.apply([create("a", email="a@example.com")]),
    ]
    for call in calls:
        with pytest.raises(ConnectorError, match="credentials revoked") as caught:
            call()
        assert not caught.value.retriable and caught.value.retry_after is None
    crm.test()


def test_a_refused_record_fails_with_its_reason_until_cleared(crm: MemoryCRM) -> None:
    crm.refuse("contacts", "email: the domain is blocked", email="bad@blocked.example")
    good, bad = crm.apply([create("good", email="ok@example.com"),
                           create("bad", email="BAD@blocked.example")])
    assert good.outcome == Outcome.CREATED
    assert (bad.outcome, bad.reason, bad.remote_id) == (
        Outcome.FAILED, "email: the domain is blocked", None)
    crm.clear_failures()
    [again] = crm.apply([create("bad", email="bad@blocked.example")])
    assert again.outcome == Outcome.CREATED


def test_a_refusal_by_ref_can_ask_to_retry_later_a_limited_number_of_times(crm: MemoryCRM
                                                                            ) -> None:
    crm.refuse("contacts", "locked by another user", ref="r1", outcome=Outcome.RETRY_LATER,
               retry_after=5, times=1)
    [first] = crm.apply([create("r1", email="a@example.com")])
    assert (first.outcome, first.retry_after) == (Outcome.RETRY_LATER, 5)
    [second] = crm.apply([create("r1", email="a@example.com")])
    assert second.outcome == Outcome.CREATED


def test_a_refusal_can_target_an_update_by_remote_id(crm: MemoryCRM) -> None:
    rid = crm.put("contacts", email="a@example.com")
    crm.refuse("contacts", "phone: not a phone number", remote_id=rid)
    [result] = crm.apply([update("u", rid, phone="12")])
    assert result.outcome == Outcome.FAILED and "phone" in (result.reason or "")
    assert crm.records["contacts"][rid] == {"email": "a@example.com"}
    with pytest.raises(ValueError):
        crm.refuse("contacts", "gone", outcome=Outcome.NOT_FOUND)


def test_validation_names_each_field(crm: MemoryCRM) -> None:
    [result] = crm.apply([create("v", email="not-an-email", shoe_size=44)])
    assert result.outcome == Outcome.FAILED
    assert result.reason == ("shoe_size: contacts has no such field; "
                             "email: 'not-an-email' is not a valid e-mail address")
    rid = crm.put("contacts", email="a@example.com")
    [blanked] = crm.apply([update("b", rid, email="")])
    assert blanked.reason == "email: this field is required"


def test_a_converted_lead_answers_remapped_with_its_contact(crm: MemoryCRM) -> None:
    lead = crm.put("leads", email="Lee@example.com", first_name="Lee", company="Lee Ltd")
    contact = crm.convert_lead(lead)
    assert crm.records["contacts"][contact] == {"email": "Lee@example.com",
                                                "first_name": "Lee", "company": "Lee Ltd"}
    for item in (update("u", lead, "leads", status="working"),
                 OrderItem("d", "leads", Operation.DELETE, lead)):
        [result] = crm.apply([item])
        assert (result.outcome, result.remote_object, result.remote_id) == (
            Outcome.REMAPPED, "contacts", contact)
    assert crm.records["leads"][lead]["status"] == "converted"  # reported as a change
    assert [r.fields["status"] for r in report_all(crm, "leads")] == ["converted"]
    assert crm.find("leads", {"email": "lee@example.com"}) == []
    assert [r.id for r in crm.find("contacts", {"email": "lee@example.com"})] == [contact]


def test_a_lead_can_be_converted_into_an_existing_contact(crm: MemoryCRM) -> None:
    contact = crm.put("contacts", email="lee@example.com")
    lead = crm.put("leads", email="lee@example.com")
    assert crm.convert_lead(lead, contact_id=contact) == contact
    assert len(crm.records["contacts"]) == 1


def test_deleted_records_are_not_found_and_reported_as_deleted(crm: MemoryCRM) -> None:
    kept, gone, purged = (crm.put("contacts", email=f"{n}@example.com") for n in "abc")
    cursor = pages(crm, "contacts", crm.clock())[-1].cursor
    crm.remove("contacts", gone)
    crm.remove("contacts", purged, purge=True)
    for item in (update("u", gone, phone="1"), OrderItem("d", "contacts", Operation.DELETE,
                                                         gone)):
        [result] = crm.apply([item])
        assert result.outcome == Outcome.NOT_FOUND
    assert [(r.id, r.deleted) for r in report_all(crm, cursor=cursor)] == [(gone, True)]
    assert set(crm.records["contacts"]) == {kept}
    assert crm.get("contacts", purged) is None
    assert crm.find("contacts", {"email": "b@example.com"}) == []


def test_a_crash_mid_batch_keeps_the_first_items_and_answers_none(crm: MemoryCRM) -> None:
    crm.crash_after(2)
    order = [create(f"c{i}", email=f"c{i}@example.com") for i in range(4)]
    with pytest.raises(SimulatedCrash):
        crm.apply(order)
    assert sorted(f["email"] for f in crm.records["contacts"].values()) == [
        "c0@example.com", "c1@example.com"]
    assert len(crm.apply(order[2:])) == 2  # the crash was one-off
    crm.crash_after(0, error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        crm.apply(order[:1])
    assert len(crm.records["contacts"]) == 4


def test_report_respects_until_and_reports_field_times(crm: MemoryCRM) -> None:
    rid = crm.put("contacts", email="a@example.com", first_name="Ann")
    created = crm.get("contacts", rid)
    until = crm.clock()
    crm.edit("contacts", rid, first_name="Anne")
    page = crm.report(ReportRequest("contacts", None, until, 10, ("first_name",)))
    assert page.records == [] and not page.more  # only the later change is there, held back
    [record] = crm.report(ReportRequest("contacts", None, crm.clock(), 10,
                                        ("email", "first_name"))).records
    assert record.fields == {"email": "a@example.com", "first_name": "Anne"}
    assert created is not None and created.modified_at and record.modified_at
    assert record.field_times["email"] == created.modified_at < record.field_times["first_name"]
    assert record.field_times["first_name"] == record.modified_at


def test_field_times_can_be_switched_off_and_the_clock_frozen() -> None:
    clock = MemoryClock(step=timedelta(0))
    crm = MemoryCRM(clock=clock, field_times=False)
    first = crm.put("contacts", email="a@x.example")
    second = crm.put("contacts", email="b@x.example")
    [a, b] = report_all(crm)
    assert (a.id, b.id) == (first, second) and a.modified_at == b.modified_at  # id breaks ties
    assert a.field_times == {}
    clock.advance(60)
    crm.edit("contacts", first, phone="+441130000000")
    assert [r.id for r in report_all(crm)] == [second, first]


def test_ids_are_numbers_in_natural_order_and_may_be_chosen() -> None:
    crm = MemoryCRM(clock=MemoryClock(step=timedelta(0)))
    assert crm.put("contacts", id="3", email="c@x.example") == "3"
    made = [crm.put("contacts", email=f"{i}@x.example") for i in range(10)]
    assert "3" not in made and made[:3] == ["1", "2", "4"]
    read = pages(crm, "contacts", crm.clock(), page_size=4)
    assert [r.id for page in read for r in page.records] == [str(i) for i in range(1, 12)]
    with pytest.raises(ValueError, match="exists"):
        crm.put("contacts", id="3")


def test_side_doors_count_no_calls_and_orders_are_kept(crm: MemoryCRM) -> None:
    rid = crm.put("contacts", email="a@example.com")
    crm.edit("contacts", rid, phone="1")
    crm.get("contacts", rid)
    assert crm.calls == 0
    crm.apply([update("u", rid, phone="2")])
    assert [[item.ref for item in order] for order in crm.orders] == [["u"]]


def test_orders_that_break_the_contract_are_refused(crm: MemoryCRM) -> None:
    with pytest.raises(ValueError, match="batch size"):
        crm.apply([create(str(i), email=f"{i}@example.com") for i in range(6)])
    with pytest.raises(ValueError, match="one object"):
        crm.apply([create("a", email="a@example.com"), create("b", "leads", email="b@x.io")])
    with pytest.raises(ConnectorError, match="no field"):
        crm.report(ReportRequest("contacts", None, crm.clock(), 10, ("shoe_size",)))
    with pytest.raises(ConnectorError, match="match keys"):
        crm.find("contacts", {"first_name": "Ann"})
    with pytest.raises(ConnectorError, match="cursor"):
        crm.report(ReportRequest("contacts", "yesterday", crm.clock(), 10, ()))
    with pytest.raises(ConnectorError, match="no object"):
        crm.find("deals", {"name": "x"})
    assert crm.calls == 0


def test_accounts_match_by_domain_or_name_case_insensitively(crm: MemoryCRM) -> None:
    acme = crm.put("accounts", name="Acme Ltd", domain="acme.example")
    crm.put("accounts", name="Other", domain="other.example")
    assert [r.id for r in crm.find("accounts", {"domain": "ACME.example"})] == [acme]
    assert [r.id for r in crm.find("accounts", {"name": " acme ltd"})] == [acme]
    assert crm.find("accounts", {"name": "Acme Ltd", "domain": "other.example"}) == []
