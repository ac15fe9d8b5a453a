"""Website Visitor values kept in a BottleCRM description, and an account's domain.

BottleCRM 0.9.0 has no custom fields, so the connector offers four fields of its own on
accounts and contacts — `website_visitor_score`, `website_visitor_band`,
`website_visitor_last_visit` and `website_visitor_permalink` — and keeps them in a marked
block at the end of the record's `description`, which salespeople read on the record's page:

    --- LeadBridge website visitor ---
    Score: 42
    Band: warm
    Last visit: 2026-11-20T10:00:00Z
    Permalink: https://hub.example.com/p/TOKEN
    --- end LeadBridge ---

Text outside the block is the salesperson's and is kept as it is (and reported as
`description`). A salesperson links an account to a Website Visitor by putting that visitor's
permalink in the block's `Permalink:` line, or anywhere in the description of an account that
has no block yet. Accounts also offer `domain`: the host of their `website`, without `www.`;
a create or update that sets a domain and no website sets the website to `https://<domain>`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

START = "--- LeadBridge website visitor ---"
END = "--- end LeadBridge ---"
LINES = {
    "website_visitor_score": "Score",
    "website_visitor_band": "Band",
    "website_visitor_last_visit": "Last visit",
    "website_visitor_permalink": "Permalink",
}
FIELDS = tuple(LINES)
_BLOCK = re.compile(re.escape(START) + r"(.*?)(?:" + re.escape(END) + r"|\Z)", re.DOTALL)
_PERMALINK = re.compile(r"https?://\S+?/p/[A-Za-z0-9_-]{16,64}")


def read_block(description: str | None) -> tuple[str | None, dict[str, Any]]:
    """The salesperson's text and the block's values (None for each one missing)."""
    values: dict[str, Any] = dict.fromkeys(FIELDS)
    if not description:
        return description, values
    found = _BLOCK.search(description)
    if found is None:
        bare = _PERMALINK.search(description)
        if bare is not None:
            values["website_visitor_permalink"] = bare.group(0)
        return description, values
    labels = {label.casefold(): name for name, label in LINES.items()}
    for line in found.group(1).splitlines():
        label, colon, value = line.partition(":")
        name = labels.get(label.strip().casefold())
        if colon and name is not None:
            text = value.strip()
            values[name] = int(text) if re.fullmatch(r"-?\d+", text) else (text or None)
    parts = [part.strip() for part in (description[: found.start()],
                                       description[found.end() :])]
    rest = "\n\n".join(part for part in parts if part)
    return rest or None, values


def write_block(description: str | None, values: Mapping[str, Any]) -> str | None:
    """`description` (without any old block) followed by a block of `values`."""
    rest = (description or "").strip()
    shown = [(LINES[name], values.get(name)) for name in FIELDS]
    if all(value is None or value == "" for _, value in shown):
        return rest or None
    block = "\n".join([START, *(f"{label}: {'' if value is None else value}"
                                for label, value in shown), END])
    return f"{rest}\n\n{block}" if rest else block


def domain_of(website: Any) -> str | None:
    """`acme.com` for `https://www.acme.com/about`; None when there is no host."""
    if not isinstance(website, str) or not website.strip():
        return None
    text = website.strip()
    host = urlsplit(text if "://" in text else f"https://{text}").hostname or ""
    host = host.lower().removeprefix("www.")
    return host or None
