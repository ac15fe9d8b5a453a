"""The BottleCRM connector against the real BottleCRM server: the shared suite, then its quirks."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bottlecrm_peer import BottleCRMServer, BottleCRMUser
from connector_suite import ConnectorSuite, SuiteTarget, create, delete_quietly, ids_of, pages
from leadbridge.connectors.base import (
    ConnectorError,
    Operation,
    OrderItem,
    Outcome,
    ReportRequest,
)
from leadbridge.connectors.bottlecrm import (
    BottleCRMClient,
    BottleCRMConnector,
    BottleCRMObject,
)

pytestmark = pytest.mark.e2e

Names = Callable[[str], str]
Connect = Callable[..., BottleCRMConnector]


def new_fields(obj: str, token: str) -> dict[str, Any]:
    """A valid create of each object; natural keys (and contact first names) made unique."""
    fields: dict[str, dict[str, Any]] = {
        "leads": {"title": f"Suite lead {token}", "email": f"lead.{token}@example.com",
                  "status": "assigned"},
        "contacts": {"first_name": f"Suite{token}", "last_name": "Tester",
                     "email": f"contact.{token}@example.com"},
        "accounts": {"name": f"Suite account {token}", "email": "office@suite.example",
                     "billing_address_line": "1 Market Street", "billing_street": "Market St",
                     "billing_city": "Leeds", "billing_state": "West Yorkshire",
                     "billing_postcode": "LS1 1AA", "billing_country": "GB"},
        "opportunities": {"name": f"Suite deal {token}", "stage": "QUALIFICATION",
                          "probability": 10},
        "tasks": {"title": f"Suite task {token}", "status": "New", "priority": "Low"},
    }
    return fields[obj]


def edit_fields(obj: str) -> dict[str, Any]:
    fields: dict[str, dict[str, Any]] = {
        "leads": {"city": "York"}, "contacts": {"last_name": "Changed"},
        "accounts": {"billing_city": "York"}, "opportunities": {"probability": 50},
        "tasks": {"status": "Completed"}}
    return fields[obj]


def free_port_url() -> str:
    """A local URL where nothing listens (the port is released before use)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def connect(bottlecrm: BottleCRMServer, bottlecrm_user: BottleCRMUser) -> Iterator[Connect]:
    """New connectors on the shared server (closed at the end), as the session's user."""
    clients: list[BottleCRMClient] = []

    def make(url: str | None = None, password: str | None = None, **options: Any
             ) -> BottleCRMConnector:
        client = BottleCRMClient(url or bottlecrm.url, bottlecrm_user.email,
                                 password or bottlecrm_user.password, **options)
        clients.append(client)
        return BottleCRMConnector(client)

    yield make
    for client in clients:
        client.close()


class TestBottleCRMContract(ConnectorSuite):
    objects = tuple(BottleCRMConnector.objects)

    @pytest.fixture
    def target(self, connect: Connect) -> SuiteTarget:
        return SuiteTarget(connect(), new_fields, edit_fields, missing_id="987654",
                           reconnect=connect)


def test_objects_are_honest_about_batches_and_modified_times() -> None:
    specs = BottleCRMConnector.objects
    assert set(specs) == {obj.value for obj in BottleCRMObject}
    assert {spec.batch_size for spec in specs.values()} == {1}
    assert not any(spec.modified_since for spec in specs.values())
    assert {name: spec.match_keys for name, spec in specs.items()} == {
        "leads": ("email", "title"), "contacts": ("email",),
        "accounts": ("domain", "name"), "opportunities": ("name",), "tasks": ("title",)}


def test_create_returns_the_new_id_and_a_second_create_cannot_duplicate(
    connect: Connect, unique_name: Names
) -> None:
    connector = connect()
    title = unique_name("Once")
    [first] = connector.apply([OrderItem("a", "leads", Operation.CREATE, fields={"title": title})])
    assert first.outcome == Outcome.CREATED
    assert [r.id for r in connector.find("leads", {"title": title.upper()})] == [first.remote_id]
    [again] = connector.apply([OrderItem("b", "leads", Operation.CREATE,
                                         fields={"title": title})])
    assert again.outcome == Outcome.FAILED and "title" in (again.reason or "")


def test_calls_count_every_http_request(connect: Connect) -> None:
    connector = connect()
    connector.test()
    assert connector.calls == 1  # the login
    connector.find("contacts", {"email": "nobody-at-all@example.com"})
    assert connector.calls == 2


def test_report_reads_closed_leads_in_id_order_from_one_listing(connect: Connect,
                                                                unique_name: Names) -> None:
    connector = connect()
    prefix = unique_name("Report")
    made = {create(connector, "leads", {"title": f"{prefix} {i}",
                                        "status": "closed" if i % 2 else "assigned"})
            for i in range(4)}
    before = connector.calls
    ids = ids_of(pages(connector, "leads", datetime.now(UTC), page_size=3))
    assert made <= set(ids) and ids == sorted(ids, key=int)
    # one listing a cycle, in BottleCRM's pages of 100 (and a login), not one per report page
    assert connector.calls - before <= len(ids) // 100 + 2


def test_resuming_after_deletions_skips_no_record(connect: Connect, unique_name: Names
                                                  ) -> None:
    """The cursor is an id, not an offset: records deleted before it shift nothing."""
    connector = connect()
    prefix = unique_name("Resume")
    made = sorted((create(connector, "leads", {"title": f"{prefix} {i}"}) for i in range(4)),
                  key=int)
    until = datetime.now(UTC)
    cursor = None
    while cursor != f"after:{made[1]}":
        page = connector.report(ReportRequest("leads", cursor, until, 1, ()))
        assert page.more
        cursor = page.cursor
    delete_quietly(connector, "leads", set(made[:2]))
    resumed = ids_of(pages(connect(), "leads", until, cursor=cursor, page_size=1))
    assert resumed[:2] == made[2:]


def test_a_deleted_record_is_not_found(connect: Connect, unique_name: Names) -> None:
    connector = connect()
    [made] = connector.apply([OrderItem("t", "tasks", Operation.CREATE, fields={
        "title": unique_name("Gone"), "status": "New", "priority": "Low"})])
    assert made.remote_id
    connector.apply([OrderItem("d", "tasks", Operation.DELETE, made.remote_id)])
    [update] = connector.apply([OrderItem("u", "tasks", Operation.UPDATE, made.remote_id,
                                          {"status": "Completed"})])
    assert update.outcome == Outcome.NOT_FOUND and update.reason


def test_an_unknown_field_fails_without_a_request(connect: Connect) -> None:
    connector = connect()
    [result] = connector.apply([OrderItem("x", "leads", Operation.CREATE,
                                          fields={"title": "x", "shoe_size": 44})])
    assert result.outcome == Outcome.FAILED and "shoe_size" in (result.reason or "")
    assert connector.calls == 0


def test_a_converted_lead_is_remapped_to_its_account(connect: Connect, bottlecrm_api:
                                                     BottleCRMClient, unique_name: Names) -> None:
    connector = connect()
    title, company = unique_name("Convert"), unique_name("Converted Co")
    [made] = connector.apply([OrderItem("l", "leads", Operation.CREATE, fields={
        "title": title, "account_name": company, "email": "buyer@example.com",
        "status": "assigned"})])
    assert made.remote_id
    bottlecrm_api.update(BottleCRMObject.LEADS, int(made.remote_id), {"status": "converted"})
    account = bottlecrm_api.find(BottleCRMObject.ACCOUNTS, company)
    assert account is not None
    [result] = connector.apply([OrderItem("u", "leads", Operation.UPDATE, made.remote_id,
                                          {"city": "York"})])
    assert (result.outcome, result.remote_object, result.remote_id) == (
        Outcome.REMAPPED, "accounts", str(account["id"]))


def test_a_wrong_password_is_fatal(connect: Connect, bottlecrm_user: BottleCRMUser) -> None:
    connector = connect(password="wrong-" + bottlecrm_user.password)
    with pytest.raises(ConnectorError) as caught:
        connector.test()
    assert not caught.value.retriable and bottlecrm_user.password not in str(caught.value)
    with pytest.raises(ConnectorError) as caught:
        connector.apply([OrderItem("x", "leads", Operation.CREATE, fields={"title": "x"})])
    assert not caught.value.retriable


def test_a_server_that_does_not_answer_is_retriable(connect: Connect) -> None:
    connector = connect(url=free_port_url(), timeout=2.0)
    with pytest.raises(ConnectorError) as caught:
        connector.find("contacts", {"email": "a@example.com"})
    assert caught.value.retriable
    [result] = connector.apply([OrderItem("x", "leads", Operation.CREATE,
                                          fields={"title": "x"})])
    assert result.outcome == Outcome.RETRY_LATER and result.reason


def test_a_throttled_request_retries_later_after_the_time_the_crm_asked() -> None:
    """BottleCRM itself never throttles; its 429 path is shown with a mock transport."""
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth/login/"):
            return httpx.Response(200, json={"token": "t", "error": False})
        return httpx.Response(429, json={"detail": "slow down"}, headers={"Retry-After": "7"})

    client = BottleCRMClient("http://crm.test", "a@example.com", "pw",
                             transport=httpx.MockTransport(answer))
    with client:
        [result] = BottleCRMConnector(client).apply([
            OrderItem("x", "contacts", Operation.DELETE, "5")])
    assert (result.outcome, result.retry_after) == (Outcome.RETRY_LATER, 7.0)
