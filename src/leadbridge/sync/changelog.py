"""The sync engine's use of the hub-side field-change log (`leadbridge.store.field_changes`).

Change detection itself compares a hub value with the value both sides last agreed on (kept
on the object link), which catches every change whoever made it. The log adds *when* a hub
field changed: under "most recent wins" a hub field's time is that of its latest logged
change since the link's last sync, made by people, the API or another connection; with none,
the record's time (which the intake moves on every hit, so it is only a fallback). Values
this connection pulled are logged under its name and never count as a hub change for it
(echo suppression; the agreed values already keep them from being sent back).

The log shrinks at the end of every cycle: a change older than the push cursor of every
enabled connection that holds links of that object was considered by all of them, and goes;
so does any change older than `sync.change_log_days` (a connection that no longer syncs must
not keep the log growing). Deletes run in small batches, each in its own transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, exists, select

from leadbridge.store import field_changes
from leadbridge.store.db import writing
from leadbridge.store.tables import connections, object_links
from leadbridge.sync import cursors

PRUNE_BATCH = 2000
FieldTimes = Mapping[str, datetime]  # field -> time of its latest logged hub change


def page_times(conn: Connection, hub_object: str, hub_ids: Collection[str],
               connection_name: str) -> dict[str, dict[str, datetime]]:
    """hub id -> field times for a page of linked records, in one query per page."""
    if hub_object not in field_changes.TRACKED_FIELDS or not hub_ids:
        return {}
    return field_changes.latest_times(conn, hub_object, hub_ids, not_from=connection_name)


def hub_time(logged: FieldTimes | None, field: str, last_synced: datetime | None,
             record_time: datetime | None) -> datetime | None:
    """The time the hub's value of `field` changed: its logged time when that is later than
    the link's last sync, else the record's time."""
    moment = logged.get(field) if logged else None
    if moment is not None and (last_synced is None or moment > last_synced):
        return moment
    return record_time


def horizon(conn: Connection, hub_object: str, now: datetime) -> datetime | None:
    """The time before which every enabled connection holding links of `hub_object` has
    considered all changes (the earliest of their push cursors); `now` when none holds any,
    None when one has no push cursor yet."""
    enabled = conn.execute(select(connections.c.id).where(
        connections.c.enabled.is_(True)).order_by(connections.c.id)).scalars().all()
    earliest = now
    for connection_id in enabled:
        holds = conn.execute(select(exists().where(
            object_links.c.connection_id == connection_id,
            object_links.c.hub_object == hub_object))).scalar()
        if not holds:
            continue
        raw = cursors.load(conn, connection_id, f"push:{hub_object}")
        if raw is None:
            return None
        earliest = min(earliest, datetime.fromisoformat(raw))
    return earliest


def prune(db: Engine, hub_object: str, now: datetime, max_age: timedelta,
          batch: int = PRUNE_BATCH) -> int:
    """Delete the changes of `hub_object` no connection needs any more; returns how many."""
    if hub_object not in field_changes.TRACKED_FIELDS:
        return 0
    with db.connect() as conn:
        if not field_changes.has_rows(conn, hub_object):
            return 0
        considered = horizon(conn, hub_object, now)
    cutoff = now - max_age if considered is None else max(considered, now - max_age)
    deleted = 0
    while True:
        with writing(db) as conn:
            gone = field_changes.delete_older(conn, hub_object, cutoff, batch)
        deleted += gone
        if gone < batch:
            return deleted
