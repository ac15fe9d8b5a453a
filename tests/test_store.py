from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select, text

from leadbridge.store import make_engine, upgrade
from leadbridge.store.ids import floor_id, new_id
from leadbridge.store.state import bump_config_version, config_version
from leadbridge.store.tables import hub_state, sites


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0012"


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
