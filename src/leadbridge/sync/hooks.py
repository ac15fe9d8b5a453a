"""Work a sync cycle carries out beside the mapping manual, for other parts of the hub.

A hook names CRM objects it wants to read each cycle, and hands back updates to send. The
engine does the CRM side as for mapped objects: it reads a watched object a page at a time
with its own cursor (stream `<hook>:<object>`, committed with what the hook wrote for the
page), applies the updates in batches of the object's size with the same retries, and counts
everything in the run log. The hook only sees records, answers and a database connection;
it never speaks to the CRM. Hooks run after the mapped objects, and not at all in a dry run
or in a cycle whose CRM failed (it is not called again until the next cycle).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection

from leadbridge.connectors.base import ItemResult, ObjectSpec, OrderItem, RemoteRecord


class CycleHook(Protocol):
    name: str  # names its cursors and run-log counts

    def watched(self, offered: Mapping[str, ObjectSpec]) -> Mapping[str, tuple[str, ...]]:
        """CRM objects to read every cycle, each with the fields wanted, out of what the
        connector offers."""
        ...

    def on_records(self, conn: Connection, connection_id: int,
                   records: Sequence[RemoteRecord], now: datetime) -> None:
        """A page of a watched object's records, in the transaction that saves its cursor."""
        ...

    def updates(self, conn: Connection, connection_id: int) -> Sequence[OrderItem]:
        """Updates to send now (any objects; each item names its record), in a transaction
        the hook may write in (to settle what needs no update)."""
        ...

    def on_results(self, conn: Connection, connection_id: int, order: Sequence[OrderItem],
                   results: Sequence[ItemResult], now: datetime) -> None:
        """The CRM's answers to one batch of updates, in the transaction that records them."""
        ...
