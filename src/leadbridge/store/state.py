"""Small key/value state shared by every process: versions, the decay epoch, fingerprints."""

from __future__ import annotations

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from leadbridge.store.tables import hub_state

CONFIG_VERSION = "config_version"


def get_state(conn: Connection, key: str) -> str | None:
    return conn.execute(select(hub_state.c.value).where(hub_state.c.key == key)).scalar()


def set_state(conn: Connection, key: str, value: str) -> None:
    ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(hub_state)
    conn.execute(
        ins.values(key=key, value=value).on_conflict_do_update(
            index_elements=[hub_state.c.key], set_={"value": value}
        )
    )


def bump_config_version(conn: Connection) -> None:
    """Tell every running process that sites, keys, rules or organisations changed."""
    done = conn.execute(
        update(hub_state)
        .where(hub_state.c.key == CONFIG_VERSION)
        .values(value=(hub_state.c.value.cast(postgresql.BIGINT) + 1).cast(hub_state.c.value.type))
    )
    if done.rowcount == 0:
        set_state(conn, CONFIG_VERSION, "1")


def config_version(conn: Connection) -> str:
    return get_state(conn, CONFIG_VERSION) or "0"
