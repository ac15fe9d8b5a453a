"""Bulk statements for the intake's hot path, straight to the driver.

SQLAlchemy Core costs more per row than the database does when a batch holds thousands of
rows; here the SQL is built once per table and dialect, and each row becomes a tuple with
only the conversions the driver cannot do itself (SQLite: UUIDs as 32 hex characters, naive
UTC datetimes in SQLAlchemy's text format and decimals as floats, the same storage Core uses).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import Connection, Float, Numeric, Table, Uuid

from leadbridge.store.tables import UTCDateTime

_Convert = Callable[[Any], Any]


def _sqlite_datetime(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is UTC:  # the usual case: the text less its "+00:00", in one call
        return value.isoformat(" ", "microseconds")[:26]
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_uuid(value: UUID | str | None) -> str | None:
    """A UUID's storage form; a string is one already (see `ids.new_hex_id`)."""
    if value is None or isinstance(value, str):
        return value
    return value.hex


def _sqlite_decimal(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


class BulkInsert:
    """`INSERT INTO table (all columns) ...` for many dict rows at once.

    SQLite runs one `VALUES (?, ...)` per row (executemany). PostgreSQL gets the whole batch
    as one JSON array in one statement (`json_populate_recordset`): one parse, plan and
    execution instead of one per row, and orjson writes the parameter in C, where psycopg
    would adapt every value in Python. Measured on 60-row batches of hits, this cuts the
    client's CPU per row by four fifths and the server's by two fifths.
    """

    def __init__(self, table: Table, dialect: str) -> None:
        self.columns = [c.name for c in table.columns]
        marker = "?" if dialect == "sqlite" else "%s"
        self.sql = (f"INSERT INTO {table.name} ({', '.join(self.columns)}) "
                    f"VALUES ({', '.join([marker] * len(self.columns))})")
        self.json_sql: str | None = None
        if dialect == "postgresql":
            names = ", ".join(self.columns)
            self.json_sql = (f"INSERT INTO {table.name} ({names}) SELECT {names} "
                             f"FROM json_populate_recordset(NULL::{table.name}, %s::json)")
        self.converters: list[tuple[int, _Convert]] = []
        if dialect == "sqlite":
            for i, column in enumerate(table.columns):
                if isinstance(column.type, UTCDateTime):
                    self.converters.append((i, _sqlite_datetime))
                elif isinstance(column.type, Uuid):
                    self.converters.append((i, _sqlite_uuid))
                elif isinstance(column.type, Numeric) and not isinstance(column.type, Float):
                    self.converters.append((i, _sqlite_decimal))

    def tuples(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        columns, converters = self.columns, self.converters
        out: list[tuple[Any, ...]] = []
        for row in rows:
            values = [row.get(c) for c in columns]
            for i, convert in converters:
                values[i] = convert(values[i])
            out.append(tuple(values))
        return out

    def execute(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        if self.json_sql is None:
            run_many(conn, self.sql, self.tuples(rows))
        else:
            run_one(conn, self.json_sql, (json_rows(rows),))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # exact: numeric reads the text
    raise TypeError(f"cannot store {type(value).__name__} in a bulk insert")


def json_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as one JSON array; keys that are not columns are ignored by the server."""
    return orjson.dumps(rows, default=_json_default, option=orjson.OPT_NAIVE_UTC).decode()


@contextmanager
def pipelined(conn: Connection) -> Iterator[None]:
    """On PostgreSQL, the statements run inside go to the server together (psycopg's pipeline
    mode) and their results are read at the end: one round trip, not one per statement.
    Elsewhere, nothing changes."""
    if conn.dialect.name != "postgresql":
        yield
        return
    raw: Any = conn.connection.dbapi_connection
    with raw.pipeline():
        yield


def run_many(conn: Connection, sql: str, params: Sequence[Sequence[Any]]) -> None:
    """`executemany` of driver-level SQL on the connection's own cursor, in its transaction.

    For the intake's statements that run every batch: SQLAlchemy's execution context costs
    more than the statement itself when a batch holds a few dozen rows.
    """
    with _cursor(conn) as cursor:
        cursor.executemany(sql, params)


def run_one(conn: Connection, sql: str, params: Sequence[Any], *,
            planned_each_time: bool = False) -> None:
    """`run_many`'s twin for one statement (say, a whole batch in one JSON parameter).

    `planned_each_time` (PostgreSQL): never run it as a prepared statement, whose generic
    plan is made without the parameters' values. For `id = ANY(%s)` on a table without
    statistics yet that plan can be a scan of the whole table; planned with the ids, it
    reads those rows through the primary key.
    """
    with _cursor(conn) as cursor:
        if planned_each_time:
            cursor.execute(sql, params, prepare=False)
        else:
            cursor.execute(sql, params)


@contextmanager
def _cursor(conn: Connection) -> Iterator[Any]:
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        yield cursor
    finally:
        cursor.close()


def time_converter(dialect: str) -> _Convert:
    """How a UTC-aware datetime goes to the driver (as Core would store it)."""
    return _sqlite_datetime if dialect == "sqlite" else _same


def uuid_converter(dialect: str) -> _Convert:
    return _sqlite_uuid if dialect == "sqlite" else _same


def decimal_converter(dialect: str) -> _Convert:
    return _sqlite_decimal if dialect == "sqlite" else _same


def in_list(values: Sequence[Any], dialect: str) -> tuple[str, tuple[Any, ...]]:
    """Markers (`?, ?, ...` or `%s, ...`) and parameters for `IN (...)` over `values`.

    The list is padded (repeating its last value) to a power of two: the driver keeps every
    distinct statement it ran prepared (sqlite3 up to 128 per connection, each as large as its
    parameter list), so one statement per list length would make memory grow batch by batch.
    """
    params = tuple(values)
    if params:
        params += params[-1:] * ((1 << (len(params) - 1).bit_length()) - len(params))
    return ", ".join(["?" if dialect == "sqlite" else "%s"] * len(params)), params


def _same(value: Any) -> Any:
    return value


def driver_sql(sql: str, dialect: str) -> str:
    """SQL written with `?` markers, in the driver's own parameter style."""
    return sql if dialect == "sqlite" else sql.replace("?", "%s")
