"""The BottleCRM client against the real BottleCRM server (PyPI `django-crm` 0.9.0)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bottlecrm_peer import BottleCRMServer, BottleCRMUser
from leadbridge.connectors.bottlecrm import (
    BottleCRMAuthError,
    BottleCRMClient,
    BottleCRMNotFoundError,
    BottleCRMObject,
    BottleCRMValidationError,
)

pytestmark = pytest.mark.e2e

Names = Callable[[str], str]


def billing(name: str) -> dict[str, str]:
    """An account with every field BottleCRM requires of one."""
    return {
        "name": name,
        "email": "office@acme.example",
        "billing_address_line": "1 Market Street",
        "billing_street": "Market Street",
        "billing_city": "Leeds",
        "billing_state": "West Yorkshire",
        "billing_postcode": "LS1 1AA",
        "billing_country": "GB",
    }


def test_a_registered_user_logs_in_and_reads(bottlecrm: BottleCRMServer) -> None:
    user = bottlecrm.register(prefix="newcomer")
    with BottleCRMClient(bottlecrm.url, user.email, user.password) as client:
        client.login()
        assert client.logins == 1
        assert isinstance(list(client.list(BottleCRMObject.LEADS, page_size=5)), list)


def test_a_wrong_password_is_an_auth_error_that_hides_the_password(
    bottlecrm: BottleCRMServer, bottlecrm_user: BottleCRMUser
) -> None:
    wrong = "not-the-password-" + bottlecrm_user.password
    client = BottleCRMClient(bottlecrm.url, bottlecrm_user.email, wrong)
    with client, pytest.raises(BottleCRMAuthError) as caught:
        client.login()
    assert wrong not in str(caught.value)
    assert wrong not in repr(client)
    assert bottlecrm_user.email in str(caught.value)


def test_a_refused_token_is_replaced_by_a_fresh_login(
    bottlecrm: BottleCRMServer, bottlecrm_user: BottleCRMUser, unique_name: Names
) -> None:
    title = unique_name("Token lead")
    with BottleCRMClient(bottlecrm.url, bottlecrm_user.email, bottlecrm_user.password,
                         token="not-a-valid-jwt") as client:
        lead_id = client.create(BottleCRMObject.LEADS, {"title": title})
        assert client.logins == 1
        assert client.get(BottleCRMObject.LEADS, lead_id)["title"] == title


def test_lead_create_list_get_update_delete(bottlecrm_api: BottleCRMClient, unique_name: Names
                                            ) -> None:
    title = unique_name("Lead")
    lead_id = bottlecrm_api.create(BottleCRMObject.LEADS, {
        "title": title, "first_name": "Ann", "last_name": "Lee", "email": "ann@example.com",
        "phone": "+14155552671", "status": "assigned", "source": "call", "country": "GB",
        "tags": ["webinar", "hot"],
    })

    lead = bottlecrm_api.get(BottleCRMObject.LEADS, lead_id)
    assert (lead["id"], lead["title"], lead["email"], lead["phone"]) == (
        lead_id, title, "ann@example.com", "+14155552671")
    assert sorted(tag["name"] for tag in lead["tags"]) == ["hot", "webinar"]
    listed = [r["id"] for r in bottlecrm_api.list(BottleCRMObject.LEADS, filters={"title": title})]
    assert listed == [lead_id]

    bottlecrm_api.update(BottleCRMObject.LEADS, lead_id, {"first_name": "Anne", "city": "York"})
    lead = bottlecrm_api.get(BottleCRMObject.LEADS, lead_id)
    assert (lead["first_name"], lead["last_name"], lead["city"]) == ("Anne", "Lee", "York")
    assert sorted(tag["name"] for tag in lead["tags"]) == ["hot", "webinar"]  # kept by merge

    bottlecrm_api.delete(BottleCRMObject.LEADS, lead_id)
    with pytest.raises(BottleCRMNotFoundError):
        bottlecrm_api.get(BottleCRMObject.LEADS, lead_id)


def test_contact_create_list_get_update_delete(bottlecrm_api: BottleCRMClient,
                                               unique_name: Names) -> None:
    first = unique_name("Ann")  # BottleCRM keeps contact first names unique
    email = first.replace(" ", ".").lower() + "@example.com"
    contact_id = bottlecrm_api.create(BottleCRMObject.CONTACTS, {
        "first_name": first, "last_name": "Lee", "email": email, "city": "Leeds",
        "country": "GB",
    })

    contact = bottlecrm_api.get(BottleCRMObject.CONTACTS, contact_id)
    assert (contact["first_name"], contact["email"]) == (first, email)
    assert contact["address"]["city"] == "Leeds"
    assert bottlecrm_api.find(BottleCRMObject.CONTACTS, email.upper())["id"] == contact_id

    with pytest.raises(BottleCRMValidationError) as caught:  # a PUT needs every required field
        bottlecrm_api.update(BottleCRMObject.CONTACTS, contact_id, {"last_name": "Lea"},
                             merge=False)
    assert set(caught.value.field_errors) == {"first_name", "email"}
    bottlecrm_api.update(BottleCRMObject.CONTACTS, contact_id, {"last_name": "Lea"})
    contact = bottlecrm_api.get(BottleCRMObject.CONTACTS, contact_id)
    assert (contact["last_name"], contact["address"]["city"]) == ("Lea", "Leeds")

    bottlecrm_api.delete(BottleCRMObject.CONTACTS, contact_id)
    assert not bottlecrm_api.exists(BottleCRMObject.CONTACTS, contact_id)


def test_account_needs_a_billing_address(bottlecrm_api: BottleCRMClient, unique_name: Names
                                         ) -> None:
    with pytest.raises(BottleCRMValidationError) as caught:
        bottlecrm_api.create(BottleCRMObject.ACCOUNTS, {"name": unique_name("Acme")})
    assert {"email", "billing_address_line", "billing_city", "billing_country"} <= set(
        caught.value.field_errors)


def test_account_create_list_get_update_delete(bottlecrm_api: BottleCRMClient,
                                               unique_name: Names) -> None:
    first = unique_name("Bea")
    contact_id = bottlecrm_api.create(BottleCRMObject.CONTACTS, {
        "first_name": first, "last_name": "Buyer",
        "email": first.replace(" ", ".").lower() + "@example.com",
    })
    name = unique_name("Acme Ltd")
    account_id = bottlecrm_api.create(BottleCRMObject.ACCOUNTS, {
        **billing(name), "website": "https://acme.example", "industry": "BANKING",
        "contacts": [contact_id],
    })

    account = bottlecrm_api.get(BottleCRMObject.ACCOUNTS, account_id)
    assert (account["name"], account["billing_city"], account["status"]) == (name, "Leeds", "open")
    assert [c["id"] for c in account["contacts"]] == [contact_id]
    assert account_id in [r["id"] for r in bottlecrm_api.list(BottleCRMObject.ACCOUNTS)]

    bottlecrm_api.update(BottleCRMObject.ACCOUNTS, account_id, {"status": "close",
                                                                 "billing_city": "York"})
    account = bottlecrm_api.get(BottleCRMObject.ACCOUNTS, account_id)
    assert (account["status"], account["billing_city"]) == ("close", "York")
    assert [c["id"] for c in account["contacts"]] == [contact_id]
    closed = bottlecrm_api.list(BottleCRMObject.ACCOUNTS, filters={"name": name})
    assert [r["id"] for r in closed] == [account_id]  # closed accounts are listed too

    bottlecrm_api.delete(BottleCRMObject.ACCOUNTS, account_id)
    with pytest.raises(BottleCRMNotFoundError):
        bottlecrm_api.delete(BottleCRMObject.ACCOUNTS, account_id)
    bottlecrm_api.delete(BottleCRMObject.CONTACTS, contact_id)


def test_opportunity_and_task_round_trip(bottlecrm_api: BottleCRMClient, unique_name: Names
                                         ) -> None:
    account_id = bottlecrm_api.create(BottleCRMObject.ACCOUNTS, billing(unique_name("Deal Co")))
    deal = unique_name("Deal")
    deal_id = bottlecrm_api.create(BottleCRMObject.OPPORTUNITIES, {
        "name": deal, "stage": "QUALIFICATION", "probability": 20, "amount": "1200.50",
        "currency": "EUR", "account": account_id, "due_date": "2030-01-31",
    })
    bottlecrm_api.update(BottleCRMObject.OPPORTUNITIES, deal_id, {"stage": "CLOSED WON",
                                                                   "probability": 100})
    opportunity = bottlecrm_api.get(BottleCRMObject.OPPORTUNITIES, deal_id)
    assert (opportunity["stage"], opportunity["amount"], opportunity["closed_on"]) == (
        "CLOSED WON", "1200.50", "2030-01-31")
    assert opportunity["account"]["id"] == account_id

    title = unique_name("Call back")
    task_id = bottlecrm_api.create(BottleCRMObject.TASKS, {
        "title": title, "status": "New", "priority": "High", "due_date": "2030-02-01",
        "account": account_id,
    })
    bottlecrm_api.update(BottleCRMObject.TASKS, task_id, {"status": "Completed"})
    task = bottlecrm_api.get(BottleCRMObject.TASKS, task_id)
    assert (task["title"], task["status"], task["account"]) == (title, "Completed", account_id)

    for obj, record_id in ((BottleCRMObject.TASKS, task_id),
                           (BottleCRMObject.OPPORTUNITIES, deal_id),
                           (BottleCRMObject.ACCOUNTS, account_id)):
        bottlecrm_api.delete(obj, record_id)


def test_listing_reads_every_page(bottlecrm_api: BottleCRMClient, unique_name: Names) -> None:
    prefix = unique_name("Paged")
    created = {
        bottlecrm_api.create(BottleCRMObject.LEADS, {
            "title": f"{prefix} {i:02d}", "status": "closed" if i % 4 == 0 else "assigned",
        })
        for i in range(25)
    }
    listed = [r["id"] for r in bottlecrm_api.list(BottleCRMObject.LEADS,
                                                  filters={"title": prefix}, page_size=10)]
    assert len(listed) == 25  # BottleCRM's default page is 10: three pages, open and closed
    assert set(listed) == created

    tasks = {
        bottlecrm_api.create(BottleCRMObject.TASKS, {
            "title": f"{prefix} task {i:02d}", "status": "New", "priority": "Low",
            "due_date": "2030-03-01",  # one due date: BottleCRM's only sort key for tasks
        })
        for i in range(12)
    }
    listed_tasks = [r["id"] for r in bottlecrm_api.list(BottleCRMObject.TASKS,
                                                        filters={"title": prefix}, page_size=5)]
    assert sorted(listed_tasks) == sorted(tasks)


def test_a_validation_error_names_the_fields(bottlecrm_api: BottleCRMClient) -> None:
    with pytest.raises(BottleCRMValidationError) as caught:
        bottlecrm_api.create(BottleCRMObject.LEADS, {
            "first_name": "No title", "email": "not-an-email", "phone": "12", "status": "nope",
        })
    errors = caught.value.field_errors
    assert {"title", "email", "phone", "status"} <= set(errors)
    assert errors["title"] == ["This field is required."]
    assert "title" in str(caught.value)
    assert caught.value.status == 400 and not caught.value.retriable


def test_a_duplicate_natural_key_is_a_validation_error(bottlecrm_api: BottleCRMClient,
                                                       unique_name: Names) -> None:
    title = unique_name("Twice")
    bottlecrm_api.create(BottleCRMObject.LEADS, {"title": title})
    with pytest.raises(BottleCRMValidationError) as caught:
        bottlecrm_api.create(BottleCRMObject.LEADS, {"title": title.upper()})
    assert caught.value.field_errors["title"] == ["Lead already exists with this title"]


@pytest.mark.parametrize("obj", list(BottleCRMObject))
def test_deleting_a_missing_record_is_not_found(bottlecrm_api: BottleCRMClient,
                                                obj: BottleCRMObject) -> None:
    with pytest.raises(BottleCRMNotFoundError) as caught:
        bottlecrm_api.delete(obj, 987_654)
    assert (caught.value.object_name, caught.value.record_id) == (obj.value, 987_654)
    assert not caught.value.retriable


def test_updating_a_missing_opportunity_creates_nothing(bottlecrm_api: BottleCRMClient,
                                                        unique_name: Names) -> None:
    """BottleCRM's PUT on a missing opportunity id would create a new one."""
    name = unique_name("Ghost")
    for merge in (True, False):
        with pytest.raises(BottleCRMNotFoundError):
            bottlecrm_api.update(BottleCRMObject.OPPORTUNITIES, 987_654, {
                "name": name, "stage": "QUALIFICATION", "probability": 5}, merge=merge)
    assert bottlecrm_api.find(BottleCRMObject.OPPORTUNITIES, name) is None


def test_a_lead_is_converted_by_update_not_by_create(bottlecrm_api: BottleCRMClient,
                                                     unique_name: Names) -> None:
    title, company = unique_name("Convert me"), unique_name("Converted Co")
    fields = {"title": title, "account_name": company, "email": "buyer@example.com"}
    with pytest.raises(BottleCRMValidationError) as caught:
        bottlecrm_api.create(BottleCRMObject.LEADS, {**fields, "status": "converted"})
    assert "status" in caught.value.field_errors
    assert bottlecrm_api.find(BottleCRMObject.LEADS, title) is None  # nothing was sent

    lead_id = bottlecrm_api.create(BottleCRMObject.LEADS, {**fields, "status": "assigned"})
    bottlecrm_api.update(BottleCRMObject.LEADS, lead_id, {"status": "converted"})
    assert bottlecrm_api.get(BottleCRMObject.LEADS, lead_id)["status"] == "converted"
    assert bottlecrm_api.find(BottleCRMObject.LEADS, title) is None  # converted: never listed
    account = bottlecrm_api.find(BottleCRMObject.ACCOUNTS, company)
    assert account is not None and account["lead"]["id"] == lead_id
