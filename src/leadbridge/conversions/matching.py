"""Which browser visitor or call a conversion names: one query per batch, not per row.

A tracker's visitor id is unique per site. A conversion that names no site matches the
browser visitor with that id seen most recently on any site (a Matomo id is random, so the
same id on two sites is the same browser only when the sites share a tracker cookie).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, select

from leadbridge.store.tables import browser_visitors, calls

__all__ = ["CallMatch", "VisitorMatch", "find_calls", "find_visitors", "pick_visitor"]

# keeps each IN (...) under SQLite's and psycopg's parameter limits
_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class VisitorMatch:
    id: int
    site_id: int
    contact_id: int | None
    last_seen_at: datetime | None


@dataclass(frozen=True, slots=True)
class CallMatch:
    id: int
    browser_visitor_id: int | None
    contact_id: int | None
    marketing_source_id: int | None


def _chunks(values: Collection[str]) -> Iterable[list[str]]:
    items = list(values)
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


_VISITORS = (select(browser_visitors.c.visitor_key, browser_visitors.c.id,
                    browser_visitors.c.site_id, browser_visitors.c.contact_id,
                    browser_visitors.c.last_seen_at)
             .where(browser_visitors.c.visitor_key.in_(bindparam("keys", expanding=True))))

_CALLS = (select(calls.c.call_ref, calls.c.id, calls.c.browser_visitor_id,
                 browser_visitors.c.contact_id, calls.c.marketing_source_id)
          .select_from(calls.outerjoin(browser_visitors,
                                       browser_visitors.c.id == calls.c.browser_visitor_id))
          .where(calls.c.call_ref.in_(bindparam("refs", expanding=True))))


def find_visitors(conn: Connection, keys: Collection[str]) -> dict[str, list[VisitorMatch]]:
    """Browser visitors by (lower-case) visitor id, on every site."""
    found: dict[str, list[VisitorMatch]] = {}
    for chunk in _chunks(keys):
        for key, id_, site_id, contact_id, seen in conn.execute(_VISITORS, {"keys": chunk}):
            found.setdefault(key, []).append(VisitorMatch(id_, site_id, contact_id, seen))
    return found


def pick_visitor(candidates: list[VisitorMatch] | None,
                 site_id: int | None) -> VisitorMatch | None:
    """The candidate on `site_id`, or without a site the one seen most recently."""
    if not candidates:
        return None
    if site_id is not None:
        return next((c for c in candidates if c.site_id == site_id), None)
    if len(candidates) == 1:
        return candidates[0]
    return max(candidates, key=lambda c: (c.last_seen_at is not None, c.last_seen_at, c.id))


def find_calls(conn: Connection, refs: Collection[str]) -> dict[str, CallMatch]:
    """Calls by call reference, with their browser visitor's contact."""
    found: dict[str, CallMatch] = {}
    for chunk in _chunks(refs):
        for ref, id_, visitor_id, contact_id, source_id in conn.execute(_CALLS, {"refs": chunk}):
            found[ref] = CallMatch(id_, visitor_id, contact_id, source_id)
    return found
