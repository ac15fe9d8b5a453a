"""Which browser visitor or call a conversion names: one query per batch, not per row.

A tracker's visitor id is unique per site. A conversion that names no site matches the
browser visitor with that id seen most recently on any site (a Matomo id is random, so the
same id on two sites is the same browser only when the sites share a tracker cookie).

The queries go straight to the driver: with thousands of values in an IN list, SQLAlchemy's
statement compilation would cost more than the lookup.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from leadbridge.store.bulk import driver_sql, in_list

__all__ = ["CallMatch", "VisitorMatch", "find_calls", "find_visitors", "pick_visitor",
           "rows_in"]

# keeps each IN (...) under SQLite's and psycopg's parameter limits
_CHUNK = 4096


@dataclass(frozen=True, slots=True)
class VisitorMatch:
    id: int
    site_id: int
    contact_id: int | None
    last_seen: Any  # as the driver returns it: compared only between candidates

    @property
    def last_seen_at(self) -> datetime | None:
        return utc(self.last_seen)


@dataclass(frozen=True, slots=True)
class CallMatch:
    id: int
    browser_visitor_id: int | None
    contact_id: int | None
    marketing_source_id: int | None


def rows_in(conn: Connection, sql: str, values: Collection[str]) -> Iterable[Sequence[Any]]:
    """Rows of `sql` (written with `?` markers and one `{in}`) for every value, chunked."""
    dialect = conn.dialect.name
    items = list(values)
    cursor = conn.connection.cursor()  # the DBAPI's own rows: no Row objects per result
    try:
        for start in range(0, len(items), _CHUNK):
            markers, params = in_list(items[start:start + _CHUNK], dialect)
            cursor.execute(driver_sql(sql.format(**{"in": markers}), dialect), params)
            yield from cursor.fetchall()
    finally:
        cursor.close()


def utc(value: Any) -> datetime | None:
    """A time read through the driver (SQLite gives text) as an aware UTC datetime."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def find_visitors(conn: Connection, keys: Collection[str]) -> dict[str, list[VisitorMatch]]:
    """Browser visitors by (lower-case) visitor id, on every site."""
    found: dict[str, list[VisitorMatch]] = {}
    sql = ("SELECT visitor_key, id, site_id, contact_id, last_seen_at FROM browser_visitors "
           "WHERE visitor_key IN ({in})")
    for key, id_, site_id, contact_id, seen in rows_in(conn, sql, keys):
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
    sql = ("SELECT c.call_ref, c.id, c.browser_visitor_id, b.contact_id, c.marketing_source_id "
           "FROM calls c LEFT JOIN browser_visitors b ON b.id = c.browser_visitor_id "
           "WHERE c.call_ref IN ({in})")
    return {ref: CallMatch(id_, visitor_id, contact_id, source_id)
            for ref, id_, visitor_id, contact_id, source_id in rows_in(conn, sql, refs)}
