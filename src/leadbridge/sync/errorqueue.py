"""The sync-error queue: what failed, for which record, how often, and when it is retried.

Record errors are retried with exponential backoff up to `MAX_ATTEMPTS`, then wait for a
person (retry now, or dismiss). An error clears itself when its record syncs. Work that cannot
proceed for 14 days is dismissed with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from leadbridge.errors import NotFound
from leadbridge.store.bulk import driver_sql, in_list
from leadbridge.store.tables import sync_errors

MAX_ATTEMPTS = 8
GIVE_UP_AFTER = timedelta(days=14)
OPEN, DISMISSED, RESOLVED = "open", "dismissed", "resolved"


def backoff(attempts: int) -> timedelta:
    """1, 2, 4 ... minutes, at most six hours."""
    return timedelta(minutes=min(2 ** (attempts - 1), 360))


@dataclass(frozen=True, slots=True)
class SyncErrorRow:
    id: int
    connection_id: int
    level: str
    direction: str
    object: str
    record_key: str
    reason: str
    attempts: int
    next_retry_at: datetime | None
    status: str
    first_failed_at: datetime
    last_failed_at: datetime


def record(conn: Connection, connection_id: int, *, level: str, direction: str, object: str,
           record_key: str, reason: str, now: datetime, retriable: bool,
           retry_after: float | None = None) -> None:
    """Add a failure, or count another attempt of a known one."""
    current = conn.execute(select(sync_errors.c.attempts, sync_errors.c.status).where(
        sync_errors.c.connection_id == connection_id, sync_errors.c.direction == direction,
        sync_errors.c.object == object, sync_errors.c.record_key == record_key)).first()
    attempts = 1 if current is None or current.status != OPEN else current.attempts + 1
    next_retry: datetime | None = None
    if retriable and attempts < MAX_ATTEMPTS:
        wait = backoff(attempts)
        if retry_after is not None:
            wait = max(wait, timedelta(seconds=retry_after))
        next_retry = now + wait
    values = {"level": level, "reason": reason[:2000], "attempts": attempts,
              "next_retry_at": next_retry, "status": OPEN, "last_failed_at": now}
    ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(sync_errors)
    conn.execute(ins.values(connection_id=connection_id, direction=direction, object=object,
                            record_key=record_key, first_failed_at=now, **values)
                 .on_conflict_do_update(
                     index_elements=["connection_id", "direction", "object", "record_key"],
                     set_=values))


def resolve(conn: Connection, connection_id: int, direction: str, object: str,
            record_keys: list[str]) -> None:
    """Open errors of these records are resolved (their records synced). Straight to the
    driver: this runs for every chunk of every cycle, mostly finding nothing to do."""
    dialect = conn.dialect.name
    for start in range(0, len(record_keys), 512):
        markers, keys = in_list(record_keys[start : start + 512], dialect)
        conn.exec_driver_sql(driver_sql(
            "UPDATE sync_errors SET status = ?, next_retry_at = NULL WHERE connection_id = ? "
            f"AND direction = ? AND object = ? AND status = ? AND record_key IN ({markers})",
            dialect), (RESOLVED, connection_id, direction, object, OPEN, *keys))


def due(conn: Connection, connection_id: int, direction: str, object: str,
        now: datetime) -> list[str]:
    """Record keys whose retry time has come."""
    return list(conn.execute(select(sync_errors.c.record_key).where(
        sync_errors.c.connection_id == connection_id, sync_errors.c.direction == direction,
        sync_errors.c.object == object, sync_errors.c.status == OPEN,
        sync_errors.c.next_retry_at <= now)).scalars())


def waiting(conn: Connection, connection_id: int, direction: str, object: str) -> set[str]:
    """Record keys with an open error that is not due: leave them alone this cycle."""
    return set(conn.execute(select(sync_errors.c.record_key).where(
        sync_errors.c.connection_id == connection_id, sync_errors.c.direction == direction,
        sync_errors.c.object == object, sync_errors.c.status == OPEN)).scalars())


def list_errors(conn: Connection, connection_id: int | None = None,
                status: str | None = OPEN) -> list[SyncErrorRow]:
    query = select(sync_errors).order_by(sync_errors.c.id)
    if connection_id is not None:
        query = query.where(sync_errors.c.connection_id == connection_id)
    if status is not None:
        query = query.where(sync_errors.c.status == status)
    return [SyncErrorRow(**r._mapping) for r in conn.execute(query)]


def retry_now(conn: Connection, error_id: int, now: datetime) -> None:
    done = conn.execute(update(sync_errors).where(sync_errors.c.id == error_id,
                                                  sync_errors.c.status == OPEN)
                        .values(next_retry_at=now, attempts=0))
    if done.rowcount == 0:
        raise NotFound(f"no open sync error {error_id}")


def dismiss(conn: Connection, error_id: int, reason: str = "dismissed by a person") -> None:
    done = conn.execute(update(sync_errors).where(sync_errors.c.id == error_id,
                                                  sync_errors.c.status == OPEN)
                        .values(status=DISMISSED, next_retry_at=None, reason=reason))
    if done.rowcount == 0:
        raise NotFound(f"no open sync error {error_id}")


def dismiss_stale(conn: Connection, now: datetime) -> int:
    """Dismiss errors that have not gone away for 14 days, saying why."""
    return conn.execute(update(sync_errors).where(
        sync_errors.c.status == OPEN, sync_errors.c.first_failed_at <= now - GIVE_UP_AFTER)
        .values(status=DISMISSED, next_retry_at=None,
                reason=sync_errors.c.reason + " — dismissed after 14 days without success")
    ).rowcount
