"""The five BottleCRM objects the connector speaks, described as data read from its source.

BottleCRM 0.9.0 (PyPI `django-crm`) answers each list and detail endpoint with a page of
side data (users, countries, tags, sometimes every account and contact) around the records,
and each object differs in small ways: where the records sit in a list answer, what a PUT
needs, which natural key it keeps unique, and what a missing id answers. This table holds
those differences so the client stays one loop. docs/bottlecrm.md explains each quirk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

Record = dict[str, Any]


class BottleCRMObject(StrEnum):
    """An object type, named as in its API path (`/api/<name>/`)."""

    LEADS = "leads"
    CONTACTS = "contacts"
    ACCOUNTS = "accounts"
    OPPORTUNITIES = "opportunities"
    TASKS = "tasks"


@dataclass(frozen=True)
class ListSection:
    """Where one paginated list sits in a list answer: `answer[container][items]`."""

    container: str | None
    items: str
    count: str

    def page(self, answer: Mapping[str, Any]) -> tuple[list[Record], int]:
        """The records of this section and the total it reports."""
        holder: Mapping[str, Any] = answer[self.container] if self.container else answer
        return list(holder.get(self.items) or []), int(holder.get(self.count) or 0)


@dataclass(frozen=True)
class ObjectShape:
    """How one object type looks and behaves on the wire.

    `writable` maps each request parameter a PUT accepts to its path in a fetched record, so
    an update can resend what it does not change (BottleCRM has no PATCH, and a PUT clears
    every relation it is not given). `relations` are sent as JSON-encoded lists: tag names,
    or ids of users, teams and contacts.
    """

    name: BottleCRMObject
    detail_key: str
    sections: tuple[ListSection, ...]
    natural_key: str
    key_filter: str
    required: tuple[str, ...]
    writable: Mapping[str, tuple[str, ...]]
    relations: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    missing_is_404: bool = True
    put_creates_when_missing: bool = False
    stable_order: bool = True

    def writable_fields(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The PUT parameters that reproduce `record` as it is (blank values left out)."""
        payload: dict[str, Any] = {}
        for param, path in self.writable.items():
            value: Any = record
            for key in path:
                value = value.get(key) if isinstance(value, Mapping) else None
            if value is not None:
                payload[param] = value
        for param, (key, attribute) in self.relations.items():
            items = record.get(key) or []
            payload[param] = [item[attribute] for item in items if isinstance(item, Mapping)]
        return payload


def _same(*names: str) -> dict[str, tuple[str, ...]]:
    return {name: (name,) for name in names}


_ADDRESS = ("address_line", "street", "city", "state", "postcode", "country")
_PEOPLE = {"assigned_to": ("assigned_to", "id"), "teams": ("teams", "id")}

SHAPES: Mapping[BottleCRMObject, ObjectShape] = {
    BottleCRMObject.LEADS: ObjectShape(
        name=BottleCRMObject.LEADS,
        detail_key="lead_obj",
        # Converted leads appear in neither section; closed ones only in the second.
        sections=(
            ListSection("open_leads", "open_leads", "leads_count"),
            ListSection("close_leads", "close_leads", "leads_count"),
        ),
        natural_key="title",
        key_filter="title",
        required=("title",),
        writable=_same(
            "title", "first_name", "last_name", "account_name", "phone", "email", "status",
            "source", "website", "description", *_ADDRESS,
        ),
        relations={"tags": ("tags", "name"), **_PEOPLE},
    ),
    BottleCRMObject.CONTACTS: ObjectShape(
        name=BottleCRMObject.CONTACTS,
        detail_key="contact_obj",
        sections=(ListSection(None, "contact_obj_list", "contacts_count"),),
        natural_key="email",
        key_filter="email",
        required=("first_name", "last_name", "email"),
        writable={
            **_same("first_name", "last_name", "email", "phone", "description"),
            **{name: ("address", name) for name in _ADDRESS},
        },
        relations=_PEOPLE,
    ),
    BottleCRMObject.ACCOUNTS: ObjectShape(
        name=BottleCRMObject.ACCOUNTS,
        detail_key="account_obj",
        sections=(
            ListSection("active_accounts", "open_accounts", "accounts_count"),
            ListSection("closed_accounts", "close_accounts", "accounts_count"),
        ),
        natural_key="name",
        key_filter="name",
        required=(
            "name", "email", "billing_address_line", "billing_street", "billing_city",
            "billing_state", "billing_postcode", "billing_country",
        ),
        writable={
            **_same(
                "name", "phone", "email", "website", "industry", "description", "status",
                "billing_address_line", "billing_street", "billing_city", "billing_state",
                "billing_postcode", "billing_country",
            ),
            "lead": ("lead", "id"),
        },
        relations={"contacts": ("contacts", "id"), "tags": ("tags", "name"), **_PEOPLE},
    ),
    BottleCRMObject.OPPORTUNITIES: ObjectShape(
        name=BottleCRMObject.OPPORTUNITIES,
        detail_key="opportunity_obj",
        sections=(ListSection(None, "opportunities", "opportunities_count"),),
        natural_key="name",
        key_filter="name",
        required=("name", "stage", "probability"),
        writable={
            **_same(
                "name", "stage", "currency", "amount", "lead_source", "probability",
                "description", "is_active",
            ),
            "account": ("account", "id"),
            # Its views store the `due_date` parameter in `closed_on`, on create and on PUT.
            "due_date": ("closed_on",),
        },
        relations={"contacts": ("contacts", "id"), "tags": ("tags", "name"), **_PEOPLE},
        missing_is_404=False,
        put_creates_when_missing=True,
    ),
    BottleCRMObject.TASKS: ObjectShape(
        name=BottleCRMObject.TASKS,
        detail_key="task_obj",
        sections=(ListSection(None, "tasks", "tasks_count"),),
        natural_key="title",
        key_filter="title",
        required=("title", "status", "priority"),
        writable=_same("title", "status", "priority", "due_date", "account"),
        relations={"contacts": ("contacts", "id"), **_PEOPLE},
        missing_is_404=False,
        # Ordered by due date alone: offset pages may repeat or skip tasks that share one.
        stable_order=False,
    ),
}
