"""What the memory CRM stores: records with their times, refusals, and report cursors.

A report cursor is the (modified time, id) of the last record reported, so records that
share a modified time are neither repeated nor skipped. Ids are numbers ("1", "2", ...)
unless a test chose its own; ties sort them in natural order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from leadbridge.connectors.base import ConnectorError, JSONValue, OrderItem, Outcome
from leadbridge.connectors.memory.objects import same_value


@dataclass
class StoredRecord:
    """One record as the memory CRM keeps it, deleted ones included."""

    id: str
    fields: dict[str, JSONValue]
    modified_at: datetime
    field_times: dict[str, datetime]
    deleted: bool = False
    converted_to: str | None = None  # the contact a converted lead became

    @property
    def position(self) -> tuple[datetime, int, str]:
        return position(self.modified_at, self.id)

    def write(self, changes: Mapping[str, JSONValue], now: datetime) -> None:
        for name, value in changes.items():
            if name not in self.fields or self.fields[name] != value:
                self.field_times[name] = now
            self.fields[name] = value
        self.modified_at = now


@dataclass
class Refusal:
    """An order item the CRM is told to refuse (see `MemoryCRM.refuse`)."""

    object: str
    reason: str
    outcome: Outcome
    retry_after: float | None
    times: int | None
    ref: str | None
    remote_id: str | None
    fields: dict[str, JSONValue] = field(default_factory=dict)

    def matches(self, item: OrderItem, row: StoredRecord | None) -> bool:
        if item.object != self.object or (self.ref is not None and item.ref != self.ref):
            return False
        if self.remote_id is not None and (row is None or row.id != self.remote_id):
            return False
        after = {**(row.fields if row else {}), **item.fields}
        return all(same_value(after.get(k), v) for k, v in self.fields.items())


def position(modified_at: datetime, record_id: str) -> tuple[datetime, int, str]:
    """Where a record sits in a report: by modified time, then id in natural order."""
    return modified_at, len(record_id), record_id


def cursor_after(row: StoredRecord) -> str:
    return f"{row.modified_at.isoformat()}|{row.id}"


def parse_cursor(cursor: str | None) -> tuple[datetime, int, str] | None:
    if cursor is None:
        return None
    moment, bar, record_id = cursor.partition("|")
    try:
        if not bar:
            raise ValueError(cursor)
        return position(datetime.fromisoformat(moment), record_id)
    except ValueError:
        raise ConnectorError(f"The memory CRM cannot read the cursor {cursor!r}; "
                             "start the object again from the beginning.") from None
