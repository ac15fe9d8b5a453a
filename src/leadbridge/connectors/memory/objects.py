"""The objects the memory CRM offers and the rules it checks on every write.

The rules are few and fixed, so every validation answer a test meets is predictable:
required fields must not be blank, fields must be ones the object has, and an `email`
must look like an e-mail address. Each problem is reported as `<field>: <what is wrong>`.
"""

from __future__ import annotations

from collections.abc import Mapping

from leadbridge.connectors.base import JSONValue, ObjectSpec
from leadbridge.connectors.marketing import MARKETING_FIELDS

DEFAULT_BATCH_SIZE = 50

_VISITOR_ON_CONTACT = ("website_visitor_score", "website_visitor_band",
                      "website_visitor_last_visit", "website_visitor_permalink")
_FIELDS: dict[str, tuple[str, ...]] = {
    "accounts": ("name", "domain", "website", "phone", "address", "industry", "employees",
                 "city", "country", "owner", "score", "band", "last_visit", "permalink"),
    "contacts": ("email", "first_name", "last_name", "phone", "job_title", "company",
                 "account_id", "city", "country", "owner", "source", "score", "band",
                 "do_not_email", *_VISITOR_ON_CONTACT, *MARKETING_FIELDS),
    "leads": ("email", "first_name", "last_name", "phone", "job_title", "company", "status",
              "source", "campaign", "owner", "score", "band", "do_not_email",
              *MARKETING_FIELDS),
    "opportunities": ("name", "stage", "amount", "currency", "close_date", "account_id",
                      "contact_id", "owner", *MARKETING_FIELDS),
    "tasks": ("subject", "description", "due", "status", "priority", "owner",
              "regarding_object", "regarding_id"),
    # a CRM with Website Visitor and Website Hit entities of its own (as Dynamics has)
    "website_visitors": ("name", "domain", "website", "phone", "address", "country",
                         "industry", "employees", "owner", "account_id", "score", "band",
                         "last_visit", "permalink"),
    "website_hits": ("hit_id", "regarding_object", "regarding_id", "occurred_at", "url",
                     "page_name", "category", "score", "channel", "campaign"),
}
_MATCH_KEYS = {"accounts": ("domain", "name"), "contacts": ("email",), "leads": ("email",),
               "website_visitors": ("domain", "name"), "website_hits": ("hit_id",),
               "opportunities": ("name",)}
_REQUIRED = {"accounts": ("name",), "contacts": ("email",), "leads": ("email",),
             "tasks": ("subject",), "opportunities": ("name", "stage"),
             "website_visitors": ("name",), "website_hits": ("hit_id", "regarding_id", "url")}

# Fields a converted lead hands over to the contact it becomes.
CONVERTED_FIELDS = ("email", "first_name", "last_name", "phone", "job_title", "company",
                    "owner", "source", "do_not_email")


def default_objects(batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, ObjectSpec]:
    """accounts (match: domain, name), contacts (email), leads (email), opportunities (name),
    tasks, and the Website Visitor entities: website_visitors (domain, name) and website_hits
    (hit_id); leads, contacts and opportunities carry the marketing fields."""
    return {
        name: ObjectSpec(name=name, batch_size=batch_size, fields=fields,
                         match_keys=_MATCH_KEYS.get(name, ()), required=_REQUIRED[name])
        for name, fields in _FIELDS.items()
    }


def is_blank(value: JSONValue) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def same_value(stored: JSONValue, wanted: JSONValue) -> bool:
    """Equality as a CRM's search sees it: text compares without regard to case."""
    if isinstance(stored, str) and isinstance(wanted, str):
        return stored.strip().casefold() == wanted.strip().casefold()
    return bool(stored == wanted)


def problems(spec: ObjectSpec, fields: Mapping[str, JSONValue], *, creating: bool) -> list[str]:
    """What is wrong with a write of `fields` to `spec`, one `<field>: <reason>` each."""
    found = [f"{name}: {spec.name} has no such field" for name in fields
             if name not in spec.fields]
    for name in spec.required:
        if (creating or name in fields) and is_blank(fields.get(name)):
            found.append(f"{name}: this field is required")
    email = fields.get("email")
    if "email" in spec.fields and not is_blank(email) and (
            not isinstance(email, str) or "@" not in email.strip()[1:-1]):
        found.append(f"email: {email!r} is not a valid e-mail address")
    return found
