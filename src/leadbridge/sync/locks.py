"""One cycle per connection at a time, across processes and machines.

PostgreSQL: a session advisory lock held for the cycle. SQLite (one machine): a lease row in
`hub_state` taken with a compare-and-set, with an expiry so a crashed process cannot hold it
for ever.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, select, text

from leadbridge.store.db import writing
from leadbridge.store.state import set_state
from leadbridge.store.tables import hub_state

LEASE = timedelta(hours=1)
_ADVISORY_NAMESPACE = 0x4C42  # "LB"


@contextmanager
def connection_lock(db: Engine, connection_id: int) -> Iterator[bool]:
    """Yield True if this process holds the connection's cycle lock, False if another does."""
    if db.dialect.name == "postgresql":
        with db.connect() as conn:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:ns, :id)"),
                                    {"ns": _ADVISORY_NAMESPACE, "id": connection_id}).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:ns, :id)"),
                                 {"ns": _ADVISORY_NAMESPACE, "id": connection_id})
                    conn.commit()
        return
    key = f"sync_lock:{connection_id}"
    now = datetime.now(UTC)
    with writing(db) as conn:
        held = conn.execute(select(hub_state.c.value).where(hub_state.c.key == key)).scalar()
        got = held is None or _lapsed(held, now)
        if got:
            set_state(conn, key, f"{(now + LEASE).isoformat()}|{socket.gethostname()}|"
                                 f"{os.getpid()}")
    try:
        yield got
    finally:
        if got:
            with db.begin() as conn:
                conn.execute(delete(hub_state).where(hub_state.c.key == key))


def _lapsed(lease: str, now: datetime) -> bool:
    """A lease is over when it expired, or when its holder on this machine has died."""
    expiry, _, holder = lease.partition("|")
    if datetime.fromisoformat(expiry) < now:
        return True
    host, _, pid = holder.partition("|")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
