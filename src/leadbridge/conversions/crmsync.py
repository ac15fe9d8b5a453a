"""What a sync cycle does for conversions, as one hook of the engine (`sync.hooks`):
read the marketing ids on CRM leads, contacts and opportunities (`writeback`), record the
goals records reached (`goals`), and write matched conversions' attribution back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Connection

from leadbridge.config import ConversionsSettings
from leadbridge.connectors.base import ItemResult, ObjectSpec, OrderItem, RemoteRecord
from leadbridge.connectors.marketing import MARKETING_FIELDS, MARKETING_OBJECTS
from leadbridge.conversions import writeback
from leadbridge.conversions.goals import Goals


class ConversionsHook:
    """One connection's conversions work in each sync cycle."""

    name = "conversions"

    def __init__(self, settings: ConversionsSettings, connection_name: str) -> None:
        self.settings = settings
        self.connection_name = connection_name
        self.goals = Goals(settings)

    def watched(self, offered: Mapping[str, ObjectSpec]) -> Mapping[str, tuple[str, ...]]:
        wanted: dict[str, tuple[str, ...]] = {}
        for obj in dict.fromkeys([*MARKETING_OBJECTS, *self.goals.by_object]):
            spec = offered.get(obj)
            if spec is None:
                continue
            fields = tuple(f for f in (*MARKETING_FIELDS, *self.goals.fields(obj))
                           if f in spec.fields)
            if any(f in fields for f in MARKETING_FIELDS):
                wanted[obj] = tuple(dict.fromkeys(fields))
        return wanted

    def on_records(self, conn: Connection, connection_id: int,
                   records: Sequence[RemoteRecord], now: datetime) -> None:
        writeback.note_records(conn, connection_id, records, now)
        self.goals.record(conn, connection_id, self.connection_name, records, now)

    def updates(self, conn: Connection, connection_id: int) -> Sequence[OrderItem]:
        writeback.note_conversions(conn, connection_id)
        return writeback.due_updates(conn, connection_id, self.settings.writeback_model)

    def on_results(self, conn: Connection, connection_id: int, order: Sequence[OrderItem],
                   results: Sequence[ItemResult], now: datetime) -> None:
        writeback.settle(conn, connection_id, order, results, now)
