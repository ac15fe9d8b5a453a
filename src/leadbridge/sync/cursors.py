"""Cursors per connection and stream, written in the same transaction as the data they cover."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from leadbridge.store.tables import sync_cursors


def load(conn: Connection, connection_id: int, stream: str) -> str | None:
    return conn.execute(select(sync_cursors.c.value).where(
        sync_cursors.c.connection_id == connection_id, sync_cursors.c.stream == stream)).scalar()


def save(conn: Connection, connection_id: int, stream: str, value: str | None,
         now: datetime) -> None:
    if value is None:
        conn.execute(delete(sync_cursors).where(sync_cursors.c.connection_id == connection_id,
                                                sync_cursors.c.stream == stream))
        return
    ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(sync_cursors)
    conn.execute(ins.values(connection_id=connection_id, stream=stream, value=value,
                            updated_at=now).on_conflict_do_update(
        index_elements=["connection_id", "stream"], set_={"value": value, "updated_at": now}))
