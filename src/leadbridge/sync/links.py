"""Object links: which CRM record a hub record is, per connection, with the values both sides
last agreed on. A link whose remote id starts with `pending:` is an intent: a create was sent
and its answer not yet recorded (a crash in between leaves it for the next run to resolve)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from leadbridge.store.bulk import driver_sql, time_converter
from leadbridge.store.tables import object_links

PENDING = "pending:"
DELETED = "deleted:"  # the CRM record was deleted there: the hub record is not pushed again


@dataclass(slots=True)
class Link:
    id: int
    hub_object: str
    hub_id: str
    remote_object: str
    remote_id: str
    values: dict[str, Any]
    last_synced_at: datetime | None = None

    @property
    def pending(self) -> bool:
        return self.remote_id.startswith(PENDING)

    @property
    def deleted(self) -> bool:
        return self.remote_id.startswith(DELETED)


def _link(row: Any) -> Link:
    return Link(row.id, row.hub_object, row.hub_id, row.remote_object, row.remote_id,
                dict(row.values or {}), row.last_synced_at)


def _by(conn: Connection, connection_id: int, side: str, object_name: str,
        keys: Iterable[str]) -> dict[str, Link]:
    """Links by hub id (side "hub") or by remote id (side "remote"), 500 keys a query."""
    object_column, key_column = object_links.c[f"{side}_object"], object_links.c[f"{side}_id"]
    ids = list(keys)
    found: dict[str, Link] = {}
    for start in range(0, len(ids), 500):
        rows = conn.execute(select(object_links).where(
            object_links.c.connection_id == connection_id, object_column == object_name,
            key_column.in_(ids[start : start + 500])))
        found.update({getattr(r, f"{side}_id"): _link(r) for r in rows})
    return found


def by_hub(conn: Connection, connection_id: int, hub_object: str,
           hub_ids: Iterable[str]) -> dict[str, Link]:
    return _by(conn, connection_id, "hub", hub_object, hub_ids)


def by_remote(conn: Connection, connection_id: int, remote_object: str,
              remote_ids: Iterable[str]) -> dict[str, Link]:
    return _by(conn, connection_id, "remote", remote_object, remote_ids)


def pending(conn: Connection, connection_id: int, hub_object: str) -> list[Link]:
    rows = conn.execute(select(object_links).where(
        object_links.c.connection_id == connection_id,
        object_links.c.hub_object == hub_object,
        object_links.c.remote_id.like(PENDING + "%")))
    return [_link(r) for r in rows]


def add(conn: Connection, connection_id: int, hub_object: str, hub_id: str,
        remote_object: str, remote_id: str, values: Mapping[str, Any],
        now: datetime | None) -> None:
    conn.execute(insert(object_links).values(
        connection_id=connection_id, hub_object=hub_object, hub_id=hub_id,
        remote_object=remote_object, remote_id=remote_id, values=dict(values),
        last_synced_at=now))


def settle(conn: Connection, link_id: int, remote_id: str, values: Mapping[str, Any],
           now: datetime) -> None:
    conn.execute(update(object_links).where(object_links.c.id == link_id)
                 .values(remote_id=remote_id, values=dict(values), last_synced_at=now))


def tombstone(conn: Connection, link: Link, now: datetime) -> None:
    """Remember that the CRM deleted this record, so the hub does not create it again."""
    if not link.deleted:
        conn.execute(update(object_links).where(object_links.c.id == link.id)
                     .values(remote_id=DELETED + link.remote_id, last_synced_at=now))


def remove(conn: Connection, link_id: int) -> None:
    conn.execute(delete(object_links).where(object_links.c.id == link_id))


_SETTLE = (update(object_links).where(object_links.c.id == bindparam("link_id"))
           .values(remote_id=bindparam("rid"), values=bindparam("vals"),
                   last_synced_at=bindparam("at")))


def add_intents(conn: Connection, connection_id: int, hub_object: str, remote_object: str,
                rows: list[tuple[str, Mapping[str, Any]]]) -> None:
    """Pending links (hub id, values to send) for creates about to be sent, in one
    executemany straight to the driver (this runs for every record of a first sync)."""
    if rows:
        sql = driver_sql("INSERT INTO object_links (connection_id, hub_object, hub_id, "
                         "remote_object, remote_id, \"values\") VALUES (?, ?, ?, ?, ?, ?)",
                         conn.dialect.name)
        conn.exec_driver_sql(sql, [(connection_id, hub_object, hub_id, remote_object,
                                    PENDING + hub_id, json.dumps(values))
                                   for hub_id, values in rows])


def confirm_intents(conn: Connection, connection_id: int, hub_object: str,
                    rows: list[tuple[str, str]], now: datetime) -> None:
    """(hub id, remote id) for intents whose create the CRM confirmed: the values stored
    with the intent are the agreed ones already."""
    if rows:
        sql = driver_sql("UPDATE object_links SET remote_id = ?, last_synced_at = ? "
                         "WHERE connection_id = ? AND hub_object = ? AND hub_id = ?",
                         conn.dialect.name)
        stamp = time_converter(conn.dialect.name)(now)
        conn.exec_driver_sql(sql, [(remote_id, stamp, connection_id, hub_object, hub_id)
                                   for hub_id, remote_id in rows])


def remove_intent(conn: Connection, connection_id: int, hub_object: str, hub_id: str) -> None:
    conn.execute(delete(object_links).where(
        object_links.c.connection_id == connection_id, object_links.c.hub_object == hub_object,
        object_links.c.hub_id == hub_id, object_links.c.remote_id.like(PENDING + "%")))


def settle_many(conn: Connection, rows: list[tuple[int, str, Mapping[str, Any]]],
                now: datetime) -> None:
    """(link id, remote id, agreed values) for many links in one statement."""
    if rows:
        conn.execute(_SETTLE, [{"link_id": i, "rid": r, "vals": dict(v), "at": now}
                               for i, r, v in rows])
