"""Engines for SQLite (WAL, the embedded default) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError

from leadbridge.errors import ConfigError


def normalise_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` as psycopg 3 URLs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, synchronous: str = "FULL", **kwargs: Any) -> Engine:
    """Create an engine; for SQLite, create the file's folder and switch on WAL."""
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database_url {url!r} is not a database URL: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # the group commit runs BEGIN/COMMIT in a worker thread, one user at a time
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               **kwargs)
        _sqlite_pragmas(engine, synchronous)
        return engine
    if parsed.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)
    raise ConfigError(f"database_url {url!r}: only sqlite and postgresql are supported")


def sqlite_file(engine: Engine) -> Path | None:
    """The SQLite database file behind `engine`; None for SQLite in memory or another
    database."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database).resolve()


SQLITE_PAGE_SIZE = 2048


def _sqlite_pragmas(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # let SQLAlchemy's own BEGIN reach SQLite (pysqlite otherwise defers it)
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # a new database only (an existing one keeps its size): the intake changes a few
        # rows on many pages per batch, and every changed page goes to the WAL whole
        cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # writers ask for the write lock up front (`writer=True`), so a read-then-write
        # transaction waits for its turn instead of failing with SQLITE_BUSY
        immediate = conn.get_execution_options().get("writer", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction that asks for SQLite's write lock up front (BEGIN IMMEDIATE).

    A deferred transaction that reads first cannot upgrade to a write once another connection
    (the intake, say) has committed since its read began: SQLite answers "database is locked"
    at once instead of waiting. On PostgreSQL this is a plain transaction.
    """
    with engine.connect().execution_options(writer=True) as conn, conn.begin():
        yield conn


_RACES = {"40P01", "40001"}  # PostgreSQL: deadlock detected, serialization failure


def lost_a_race(exc: BaseException) -> bool:
    """Whether a failed write transaction lost a race with another writer and may simply run
    again: a unique key stored first by the other one, or a deadlock the database broke."""
    if isinstance(exc, IntegrityError):
        return True
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _RACES
