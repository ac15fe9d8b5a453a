"""The marketing fields on BottleCRM leads, contacts and opportunities, kept in the
description: BottleCRM 0.9.0 has no custom fields, and `description` is the one free-text
field all three objects share and a person sees on every record's page.

Each field is one line of the description:

    LeadBridge visitor id: 3f9a0c1d2e4b5a69
    LeadBridge call ref: CALL-10042
    LeadBridge channel: paid_search
    LeadBridge source: google
    LeadBridge campaign: spring-sale

Operators may type `visitor id: ...` or `call ref: ...` without the prefix (any case); the
attribution lines the hub writes always carry it. Writing a field replaces its line and
keeps every other line of the description as it was; an empty value removes the line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from leadbridge.connectors.base import JSONValue
from leadbridge.connectors.marketing import (
    CALL_REF,
    CAMPAIGN,
    CHANNEL,
    MARKETING_FIELDS,
    SOURCE,
    VISITOR_ID,
)

LABELS = {VISITOR_ID: "visitor id", CALL_REF: "call ref", CHANNEL: "channel",
          SOURCE: "source", CAMPAIGN: "campaign"}
_BY_LABEL = {label: name for name, label in LABELS.items()}
_PREFIX_OPTIONAL = {VISITOR_ID, CALL_REF}
_LINE = re.compile(r"^\s*(leadbridge\s+)?(visitor id|call ref|channel|source|campaign)\s*:\s*"
                   r"(.*?)\s*$", re.IGNORECASE)


def _field_of(line: str) -> tuple[str, str] | None:
    found = _LINE.match(line)
    if found is None:
        return None
    name = _BY_LABEL[found.group(2).lower()]
    if found.group(1) is None and name not in _PREFIX_OPTIONAL:
        return None
    return name, found.group(3)


def read_fields(description: JSONValue) -> dict[str, str | None]:
    """The marketing fields found in a description (None for each one absent)."""
    found: dict[str, str | None] = dict.fromkeys(MARKETING_FIELDS)
    if isinstance(description, str):
        for line in description.splitlines():
            field = _field_of(line)
            if field is not None and field[1] and found[field[0]] is None:
                found[field[0]] = field[1]
    return found


def write_fields(description: JSONValue, values: Mapping[str, JSONValue]) -> str:
    """The description with these marketing fields' lines replaced (or added, or removed)."""
    text = description if isinstance(description, str) else ""
    kept = [line for line in text.splitlines()
            if (field := _field_of(line)) is None or field[0] not in values]
    while kept and not kept[-1].strip():
        kept.pop()
    added = [f"LeadBridge {LABELS[name]}: {' '.join(str(value).split())}"
             for name, value in values.items() if value not in (None, "")]
    if kept and added:
        kept.append("")
    return "\n".join(kept + added)
