"""Migrations that move data: what was stored before reads the same after."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, insert, select

from leadbridge.conversions.attribution import credit_rows, path_id
from leadbridge.store.ids import new_id
from leadbridge.store.migrate import downgrade, upgrade
from leadbridge.store.tables import attribution_paths, conversions

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CREDITS = sa.table("conversion_credits", *(sa.column(c) for c in (
    "conversion_id", "touch", "touches", "channel", "source", "campaign", "session_started_at",
    "w_first", "w_last", "w_linear", "w_position")))
# conversions as revision 0010 has them
AT_0010 = sa.table("conversions", *(sa.column(name, conversions.c[name].type) for name in (
    "id", "action", "occurred_at", "source", "dedupe_key", "created_at")))
EMAIL = ("email", "newsletter", "spring")
DIRECT = ("direct", "(none)", "(none)")


@pytest.fixture
def at_0010(engine: Engine) -> Iterator[Engine]:
    downgrade(engine, "0010")
    try:
        yield engine
    finally:
        upgrade(engine)


def credit(cid: str, touch: int, touches: int, t: tuple[str, str, str],
           w: tuple[float, float, float, float]) -> dict[str, object]:
    return {"conversion_id": cid, "touch": touch, "touches": touches, "channel": t[0],
            "source": t[1], "campaign": t[2], "session_started_at": None,
            "w_first": w[0], "w_last": w[1], "w_linear": w[2], "w_position": w[3]}


def test_credit_rows_become_shared_paths_and_come_back(at_0010: Engine) -> None:
    engine = at_0010
    ids = [new_id() for _ in range(3)]
    with engine.begin() as conn:
        for i, cid in enumerate(ids):
            conn.execute(insert(AT_0010).values(
                id=cid, action="sale", occurred_at=T0, source="api", dedupe_key=f"k{i}",
                created_at=T0))
        # the driver's own form of the ids, as the credit rows hold them
        raw = [r[0] for r in conn.execute(sa.text("SELECT id FROM conversions ORDER BY id"))]
        two = ((1, 0, 0.5, 0.5), (0, 1, 0.5, 0.5))
        conn.execute(insert(CREDITS), [
            credit(raw[0], 0, 2, EMAIL, two[0]), credit(raw[0], 1, 2, DIRECT, two[1]),
            credit(raw[1], 0, 2, EMAIL, two[0]), credit(raw[1], 1, 2, DIRECT, two[1]),
            credit(raw[2], 0, 1, DIRECT, (1, 1, 1, 1))])
    upgrade(engine)
    with engine.connect() as conn:
        paths = dict(conn.execute(select(conversions.c.id, conversions.c.path_id)).all())
        stored = conn.execute(select(attribution_paths).order_by(
            attribution_paths.c.path_id, attribution_paths.c.touch)).all()
        q = credit_rows()
        credited = conn.execute(select(q.c.touch, q.c.channel, q.c.w_first, q.c.w_position)
                                .where(q.c.conversion_id == ids[0]).order_by(q.c.touch)).all()
    assert paths[ids[0]] == paths[ids[1]] == path_id((EMAIL, DIRECT))
    assert paths[ids[2]] == path_id((DIRECT,))
    assert len(stored) == 3  # the shared path of two touches is stored once
    assert [tuple(r) for r in credited] == [(0, "email", 1, 0.5), (1, "direct", 0, 0.5)]
    downgrade(engine, "0010")
    with engine.connect() as conn:
        back = conn.execute(select(CREDITS.c.touch, CREDITS.c.channel, CREDITS.c.w_last)
                            .order_by(CREDITS.c.conversion_id, CREDITS.c.touch)).all()
    assert [tuple(r) for r in back] == [(0, "email", 0), (1, "direct", 1)] * 2 + [
        (0, "direct", 1)]


def test_the_utc_day_of_existing_conversions_is_filled_in(engine: Engine) -> None:
    downgrade(engine, "0011")
    try:
        # 01:00 on 2 March at +02:00 is 23:00 on 1 March in UTC
        moment = datetime(2026, 3, 2, 1, 0, tzinfo=timezone(timedelta(hours=2)))
        with engine.begin() as conn:
            conn.execute(insert(AT_0010).values(
                id=new_id(), action="sale", occurred_at=moment, source="api",
                dedupe_key="k", created_at=moment))
    finally:
        upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(select(conversions.c.occurred_on)).scalar_one() == date(2026, 3, 1)


def test_the_migrated_schema_is_the_one_the_code_declares(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from leadbridge.store.tables import metadata

    with engine.connect() as conn, warnings.catch_warnings():
        # SQLite's expression indexes (lower(email)) cannot be reflected, so are not compared
        warnings.simplefilter("ignore")
        # the job queue's own tables (procrastinate's schema on PostgreSQL) are not ours
        ours = {"alembic_version", *metadata.tables}
        context = MigrationContext.configure(conn, opts={
            "compare_type": True, "compare_server_default": True,
            "include_name": lambda name, kind, parents: kind != "table" or name in ours})
        assert compare_metadata(context, metadata) == []
