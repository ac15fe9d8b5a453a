"""Mapping manuals a connection uses when `leadbridge.toml` gives none (per connector kind).

Each default syncs, in this order:

1. Website Visitors with CRM accounts (match keys: domain, then name). An account is never
   created for every visitor (`create_in_crm` is off): a visitor is paired with an account
   that matches it, that carries its permalink, or that `leadbridge visitors create-account`
   made. The account's own name, phone, website and address win unless blank; the visitor's
   score, band, last visit and permalink are written to the account.
2. Contacts (match key: email), with their Website Visitor's score, band, last visit and
   permalink.
3. Website Hits, push only: each scored hit of a paired visitor, once, attached to its
   account (a Website Hit record where the CRM has one, a completed task in BottleCRM).
"""

from __future__ import annotations

from typing import Any

from leadbridge.errors import ConfigError
from leadbridge.sync.mapping import MappingManual

_CRM_UNLESS_BLANK = "prefer_crm_unless_blank"
_VISITOR_ON_CONTACT = [
    {"hub": f"website_visitor_{name}", "crm": f"website_visitor_{name}", "direction": "to_crm"}
    for name in ("score", "band", "last_visit", "permalink")
]


def _contacts(extra: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "hub": "contact", "crm": "contacts", "match": ["email"], "create_in_hub": True,
        "fields": [{"hub": "email", "crm": "email"}, {"hub": "name", "crm": "first_name"},
                   *extra],
        "constants": {"last_name": "-"},
    }


_MEMORY: dict[str, Any] = {"objects": [
    {
        "hub": "website_visitor", "crm": "accounts", "match": ["domain", "name"],
        "create_in_crm": False,
        "fields": [
            *({"hub": name, "crm": name, "rule": _CRM_UNLESS_BLANK}
              for name in ("name", "domain", "website", "phone", "address", "country",
                           "industry", "employees", "owner")),
            *({"hub": name, "crm": name, "direction": "to_crm"}
              for name in ("score", "band", "last_visit", "permalink")),
        ],
    },
    _contacts(_VISITOR_ON_CONTACT),
    {
        "hub": "website_hit", "crm": "website_hits", "match": ["hit_id"], "pull": False,
        "fields": [
            {"hub": "hit_id", "crm": "hit_id", "direction": "to_crm"},
            {"hub": "visitor_record", "crm": "regarding_id", "direction": "to_crm"},
            *({"hub": name, "crm": name, "direction": "to_crm"}
              for name in ("occurred_at", "url", "page_name", "category", "score",
                           "channel", "campaign")),
        ],
        "constants": {"regarding_object": "accounts"},
    },
]}

# BottleCRM: the visitor block lives in `description` (connectors/bottlecrm/visitorblock.py).
# Its accounts need an e-mail and a full billing address; the hub knows neither, so a create
# fills the gaps with placeholders a salesperson replaces (`.invalid` is never deliverable).
_BOTTLECRM: dict[str, Any] = {"objects": [
    {
        "hub": "website_visitor", "crm": "accounts", "match": ["domain", "name"],
        "create_in_crm": False,
        "fields": [
            {"hub": "name", "crm": "name", "rule": _CRM_UNLESS_BLANK},
            {"hub": "domain", "crm": "domain", "rule": _CRM_UNLESS_BLANK},
            {"hub": "website", "crm": "website", "rule": _CRM_UNLESS_BLANK},
            {"hub": "phone", "crm": "phone", "rule": _CRM_UNLESS_BLANK},
            {"hub": "address", "crm": "billing_address_line", "rule": _CRM_UNLESS_BLANK},
            {"hub": "country", "crm": "billing_country", "rule": _CRM_UNLESS_BLANK},
            *({"hub": name, "crm": f"website_visitor_{name}", "direction": "to_crm"}
              for name in ("score", "band", "last_visit", "permalink")),
        ],
        "constants": {"email": "unknown@website-visitor.invalid", "billing_address_line": "-",
                      "billing_street": "-", "billing_city": "-", "billing_state": "-",
                      "billing_postcode": "-"},
    },
    _contacts(_VISITOR_ON_CONTACT),
    {
        "hub": "website_hit", "crm": "tasks", "match": ["title"], "pull": False,
        "fields": [
            {"hub": "title", "crm": "title", "direction": "to_crm"},
            {"hub": "visitor_record", "crm": "account", "direction": "to_crm"},
            {"hub": "occurred_on", "crm": "due_date", "direction": "to_crm"},
        ],
        "constants": {"status": "Completed", "priority": "Low"},
    },
]}

DEFAULTS: dict[str, dict[str, Any]] = {
    "bottlecrm": _BOTTLECRM,
    "memory": _MEMORY,
}


def manual_for(connection: str, kind: str, configured: dict[str, Any]) -> MappingManual:
    """The configured manual for this connection, else the default of its connector kind."""
    raw = configured.get(connection) or DEFAULTS.get(kind)
    if raw is None:
        raise ConfigError(f"connection {connection!r}: no mapping manual in leadbridge.toml "
                          f"([sync.mappings.{connection}]) and no default for {kind}")
    try:
        return MappingManual.model_validate(raw)
    except ValueError as exc:
        raise ConfigError(f"sync.mappings.{connection} is not a valid mapping manual: "
                          f"{exc}") from exc
