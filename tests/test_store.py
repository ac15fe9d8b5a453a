from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert, select, text

from leadbridge.store import make_engine, upgrade
from leadbridge.store.db import SQLITE_PAGE_SIZE
from leadbridge.store.ids import floor_id, new_id
from leadbridge.store.state import bump_config_version, config_version
from leadbridge.store.tables import hub_state, sites


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0013"


def test_times_come_back_utc_aware(engine: Engine) -> None:
    moment = datetime(2026, 3, 1, 12, 0, tzinfo=UTC) + timedelta(microseconds=5)
    with engine.begin() as conn:
        conn.execute(insert(sites).values(name="s", hosts=["a.example"], created_at=moment))
        got = conn.execute(select(sites.c.created_at)).scalar_one()
    assert got == moment and got.tzinfo is not None


def test_config_version_counts_up(engine: Engine) -> None:
    with engine.begin() as conn:
        assert config_version(conn) == "0"
        bump_config_version(conn)
        bump_config_version(conn)
        assert config_version(conn) == "2"
        assert conn.execute(select(hub_state.c.value)).scalar_one() == "2"


def test_uuid7_keys_sort_by_creation_time() -> None:
    a = new_id()
    b = new_id()
    assert a < b
    past = datetime.now(UTC) - timedelta(days=1)
    assert floor_id(past) < a
    assert floor_id(datetime.now(UTC) + timedelta(seconds=5)) > b


def test_sqlite_default_creates_folder_and_uses_wal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(f"sqlite:///{tmp_path}/nested/dir/lb.db")
    upgrade(eng)
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    eng.dispose()


def test_a_new_sqlite_database_gets_small_pages_and_an_old_one_keeps_its_own(
        tmp_path: Path) -> None:
    import sqlite3

    old = tmp_path / "old.db"
    with sqlite3.connect(old) as raw:
        raw.execute("PRAGMA page_size=4096")
        raw.execute("CREATE TABLE t (x)")
    for path, size in ((tmp_path / "new.db", SQLITE_PAGE_SIZE), (old, 4096)):
        engine = make_engine(f"sqlite:///{path}")
        try:
            upgrade(engine)
            with engine.connect() as conn:
                assert conn.execute(text("PRAGMA page_size")).scalar() == size
                assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        finally:
            engine.dispose()
    assert SQLITE_PAGE_SIZE == 2048
