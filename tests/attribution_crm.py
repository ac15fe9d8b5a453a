"""A sync engine with the conversions hook against the memory CRM, for goal and write-back tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from attribution_seed import T0
from leadbridge.config import ConversionsSettings, Settings
from leadbridge.connectors.memory import MemoryClock, MemoryCRM
from leadbridge.conversions.crmsync import ConversionsHook
from leadbridge.store.tables import connections
from leadbridge.sync.engine import CycleReport, SyncEngine
from leadbridge.sync.mapping import MappingManual

MANUAL = MappingManual.model_validate({"objects": [{
    "hub": "contact", "crm": "contacts", "match": ["email"], "create_in_hub": True,
    "fields": [{"hub": "email", "crm": "email"}]}]})
NOW = datetime(2026, 11, 20, tzinfo=UTC)


def new_connection(engine: Engine, name: str = "tiny") -> int:
    with engine.begin() as conn:
        return int(conn.execute(insert(connections).values(
            name=name, kind="memory", settings={}, created_at=NOW, updated_at=NOW,
            enabled=True).returning(connections.c.id)).scalar_one())


def memory_crm() -> MemoryCRM:
    """A CRM whose changes happen a day after the seeded visits (T0)."""
    return MemoryCRM(clock=MemoryClock(start=T0 + timedelta(days=1)))


class Cycles:
    def __init__(self, engine: Engine, settings: Settings, crm: MemoryCRM,
                 conversions: ConversionsSettings, name: str = "tiny") -> None:
        self.engine, self.settings, self.crm = engine, settings, crm
        self.connection_id = new_connection(engine, name)
        self.hook = ConversionsHook(conversions, name)
        self.minutes = 0

    def run(self, **kw: Any) -> CycleReport:
        self.minutes += 10
        at = NOW + timedelta(minutes=self.minutes)
        return SyncEngine(self.engine, self.settings, self.connection_id, self.crm, MANUAL,
                          sleep=lambda s: None, clock=lambda: at, hooks=[self.hook], **kw).run()
