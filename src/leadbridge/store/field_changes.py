"""The hub-side field-change log: one row per change of a synced field of a contact or a
Website Visitor, written in the same transaction as the change.

A row's `origin` says who made the change: None for people and the API, a connection's name
for a value the sync engine pulled from that CRM (so it is never taken for a hub change to
send back there). The sync engine reads the log for field times (conflict rule "most recent
wins") and deletes what every connection has considered (`leadbridge.sync.changelog`).
Creating a record logs nothing: a new record has no earlier value to conflict with.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select

from leadbridge.store.tables import field_changes

# The fields of each hub object a mapping manual can sync (the writable ones).
TRACKED_FIELDS: dict[str, tuple[str, ...]] = {
    "contact": ("email", "name", "external_id"),
    "website_visitor": ("name", "domain", "phone", "website", "address", "country",
                        "industry", "employees", "owner", "crm_account_id"),
}
_READ_CHUNK = 2000  # hub ids per query: one query for a whole page of the sync engine


def record(conn: Connection, hub_object: str, hub_id: int | str, values: Mapping[str, Any],
           changed_at: datetime, origin: str | None = None) -> int:
    """Log `values` (field -> new value) of one record; fields that cannot sync are left
    out. Returns how many rows were written."""
    tracked = TRACKED_FIELDS.get(hub_object, ())
    rows = [{"hub_object": hub_object, "hub_id": str(hub_id), "field": name, "value": value,
             "origin": origin, "changed_at": changed_at}
            for name, value in values.items() if name in tracked]
    if rows:
        conn.execute(insert(field_changes), rows)
    return len(rows)


def changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `after` whose value differs from `before`'s."""
    return {k: v for k, v in after.items() if before.get(k) != v}


def has_rows(conn: Connection, hub_object: str) -> bool:
    return conn.execute(select(field_changes.c.id).where(
        field_changes.c.hub_object == hub_object).limit(1)).first() is not None


def latest_times(conn: Connection, hub_object: str, hub_ids: Collection[str], *,
                 not_from: str | None = None) -> dict[str, dict[str, datetime]]:
    """hub id -> field -> time of its latest logged change, for many records at once;
    changes pulled from connection `not_from` are left out."""
    found: dict[str, dict[str, datetime]] = {}
    ids = list(hub_ids)
    latest = func.max(field_changes.c.changed_at)
    for start in range(0, len(ids), _READ_CHUNK):
        query = (select(field_changes.c.hub_id, field_changes.c.field, latest)
                 .where(field_changes.c.hub_object == hub_object,
                        field_changes.c.hub_id.in_(ids[start : start + _READ_CHUNK]))
                 .group_by(field_changes.c.hub_id, field_changes.c.field))
        if not_from is not None:
            query = query.where(or_(field_changes.c.origin.is_(None),
                                    field_changes.c.origin != not_from))
        for hub_id, name, moment in conn.execute(query):
            found.setdefault(hub_id, {})[name] = moment
    return found


def delete_older(conn: Connection, hub_object: str, before: datetime, limit: int) -> int:
    """Delete at most `limit` of the object's rows changed before `before` (oldest first);
    returns how many went."""
    oldest = (select(field_changes.c.id)
              .where(field_changes.c.hub_object == hub_object,
                     field_changes.c.changed_at < before)
              .order_by(field_changes.c.changed_at).limit(limit))
    ids = list(conn.execute(oldest).scalars())
    if ids:
        conn.execute(delete(field_changes).where(field_changes.c.id.in_(ids)))
    return len(ids)


def forget(conn: Connection, hub_object: str, hub_ids: Collection[str]) -> None:
    """Delete every logged change of these records (their record was erased)."""
    if hub_ids:
        conn.execute(delete(field_changes).where(field_changes.c.hub_object == hub_object,
                                                 field_changes.c.hub_id.in_(list(hub_ids))))
