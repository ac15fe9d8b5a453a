"""Run sync cycles for configured connections: credentials, connector, manual, lock, engine."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from leadbridge.config import Settings
from leadbridge.connections import (
    build_connector,
    close_connector,
    credentials_for,
    get_connection,
    list_connections,
)
from leadbridge.conversions.crmsync import ConversionsHook
from leadbridge.keyring import load_keyring
from leadbridge.sync.budget import ApiBudget, limits_for
from leadbridge.sync.defaults import manual_for
from leadbridge.sync.engine import CycleReport, SyncEngine
from leadbridge.sync.locks import connection_lock


@dataclass(frozen=True, slots=True)
class CycleOutcome:
    connection: str
    report: CycleReport | None  # None: another process was running this connection's cycle


def sync_connections(db: Engine, settings: Settings, name: str | None = None,
                     *, dry_run: bool = False) -> list[CycleOutcome]:
    """One cycle for `name`, or for every enabled connection."""
    with db.connect() as conn:
        chosen = [get_connection(conn, name)] if name else [
            c for c in list_connections(conn) if c.enabled]
    if not chosen:
        return []
    keyring = load_keyring(settings)
    outcomes = []
    for connection in chosen:
        manual = manual_for(connection.name, connection.kind, settings.sync.mappings)
        with db.connect() as conn:
            credentials = credentials_for(conn, keyring, connection.name)
        with connection_lock(db, connection.id) as mine:
            if not mine:
                outcomes.append(CycleOutcome(connection.name, None))
                continue
            connector = build_connector(connection.kind, connection.settings, credentials)
            budget = ApiBudget(db, connection.id, limits_for(settings.sync, connection.name))
            hooks = ([ConversionsHook(settings.conversions, connection.name)]
                     if settings.conversions.crm else [])
            try:
                report = SyncEngine(db, settings, connection.id, connector, manual,
                                    dry_run=dry_run, budget=budget, hooks=hooks).run()
            finally:
                close_connector(connector)
        outcomes.append(CycleOutcome(connection.name, report))
    return outcomes
