"""attribution paths: conversions name a shared path of touches instead of a credit row per touch

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import leadbridge.store.tables

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_CHUNK = 5000
_UTC = leadbridge.store.tables.UTCDateTime
_TOUCH = ("channel", "source", "campaign")
_WEIGHTS = ("w_first", "w_last", "w_linear", "w_position")


def _path_id(touches: Sequence[tuple[str, str, str]]) -> str:
    # as leadbridge.conversions.attribution.path_id names them
    # JSON: any text a hit carried (control characters too) reads back one way only
    text = json.dumps(touches, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _paths_table() -> sa.TableClause:
    return sa.table("attribution_paths", sa.column("path_id"), sa.column("touch"),
                    sa.column("touches"), *(sa.column(c) for c in _TOUCH + _WEIGHTS))


def _credits_table() -> sa.TableClause:
    return sa.table("conversion_credits", sa.column("conversion_id"), sa.column("touch"),
                    sa.column("touches"), sa.column("session_started_at"),
                    *(sa.column(c) for c in _TOUCH + _WEIGHTS))


def _by_conversion(rows: Iterator[Any]) -> Iterator[tuple[Any, list[Any]]]:
    current: Any = None
    touches: list[Any] = []
    for row in rows:
        if row.conversion_id != current:
            if touches:
                yield current, touches
            current, touches = row.conversion_id, []
        touches.append(row)
    if touches:
        yield current, touches


def upgrade() -> None:
    op.create_table(
        "attribution_paths",
        sa.Column("path_id", sa.String(length=32), nullable=False),
        sa.Column("touch", sa.Integer(), nullable=False),
        sa.Column("touches", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("campaign", sa.String(length=300), nullable=False),
        sa.Column("w_first", sa.Float(), nullable=False),
        sa.Column("w_last", sa.Float(), nullable=False),
        sa.Column("w_linear", sa.Float(), nullable=False),
        sa.Column("w_position", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("path_id", "touch", name=op.f("pk_attribution_paths")),
    )
    with op.batch_alter_table("conversions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("path_id", sa.String(length=32), nullable=True))
    # every conversion's credit rows become its path (the weights as they were stored)
    conn = op.get_bind()
    credits, paths = _credits_table(), _paths_table()
    conversions = sa.table("conversions", sa.column("id"), sa.column("path_id"))
    seen: set[str] = set()
    for page in _pages(conn, credits):
        updates = []
        for conversion_id, touches in _by_conversion(iter(page)):
            pid = _path_id([tuple(getattr(t, c) for c in _TOUCH) for t in touches])
            if pid not in seen:
                seen.add(pid)
                conn.execute(sa.insert(paths), [
                    {"path_id": pid, "touch": i, "touches": len(touches),
                     **{c: getattr(t, c) for c in _TOUCH + _WEIGHTS}}
                    for i, t in enumerate(touches)])
            updates.append({"cid": conversion_id, "pid": pid})
        _set_paths(conn, conversions, updates)
    op.drop_table("conversion_credits")


def _pages(conn: sa.Connection, credits: sa.TableClause) -> Iterator[list[Any]]:
    """Credit rows in (conversion, touch) order, a page at a time, never splitting the
    rows of one conversion between two pages."""
    after = None
    while True:
        query = sa.select(credits).order_by(credits.c.conversion_id, credits.c.touch)
        if after is not None:
            query = query.where(credits.c.conversion_id > after)
        rows: list[Any] = list(conn.execute(query.limit(_CHUNK)))
        if len(rows) == _CHUNK:  # the last conversion may go on: it starts the next page
            last = rows[-1].conversion_id
            whole = [r for r in rows if r.conversion_id != last]
            if whole:
                rows = whole
            else:  # one conversion with more touches than a page: read it whole
                rows = list(conn.execute(sa.select(credits)
                                         .where(credits.c.conversion_id == last)
                                         .order_by(credits.c.touch)))
        if not rows:
            return
        yield rows
        after = rows[-1].conversion_id


def _set_paths(conn: sa.Connection, conversions: sa.TableClause,
               updates: list[dict[str, Any]]) -> None:
    if updates:
        conn.execute(sa.update(conversions).where(conversions.c.id == sa.bindparam("cid"))
                     .values(path_id=sa.bindparam("pid")), updates)


def downgrade() -> None:
    op.create_table(
        "conversion_credits",
        sa.Column("conversion_id", sa.Uuid(), nullable=False),
        sa.Column("touch", sa.Integer(), nullable=False),
        sa.Column("touches", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("campaign", sa.String(length=300), nullable=False),
        sa.Column("session_started_at", _UTC(timezone=True), nullable=True),
        sa.Column("w_first", sa.Float(), nullable=False),
        sa.Column("w_last", sa.Float(), nullable=False),
        sa.Column("w_linear", sa.Float(), nullable=False),
        sa.Column("w_position", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("conversion_id", "touch", name=op.f("pk_conversion_credits")),
    )
    conn = op.get_bind()
    credits, paths = _credits_table(), _paths_table()
    conversions = sa.table("conversions", sa.column("id"), sa.column("path_id"))
    conn.execute(sa.insert(credits).from_select(
        ["conversion_id", "touch", "touches", *_TOUCH, *_WEIGHTS],
        sa.select(conversions.c.id, paths.c.touch, paths.c.touches,
                  *(paths.c[c] for c in _TOUCH + _WEIGHTS))
        .select_from(conversions.join(paths, paths.c.path_id == conversions.c.path_id))))
    with op.batch_alter_table("conversions", schema=None) as batch_op:
        batch_op.drop_column("path_id")
    op.drop_table("attribution_paths")
