"""A minimal CRM behind the connector contract, for the engine's own tests."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from leadbridge.connectors.base import (
    ConnectorError,
    ItemResult,
    ObjectSpec,
    Operation,
    OrderItem,
    Outcome,
    RemoteRecord,
    ReportPage,
    ReportRequest,
)


class TinyCRM:
    kind = "tiny"

    def __init__(self, batch_size: int = 10) -> None:
        self.objects = {
            "contacts": ObjectSpec("contacts", batch_size, ("email", "first_name", "score"),
                                   match_keys=("email",), required=("email",)),
            "accounts": ObjectSpec("accounts", batch_size,
                                   ("name", "domain", "phone", "score", "last_visit"),
                                   match_keys=("domain", "name"), required=("name",)),
        }
        self.records: dict[str, dict[str, dict[str, Any]]] = {"contacts": {}, "accounts": {}}
        self.modified: dict[tuple[str, str], datetime] = {}
        self.clock = datetime(2026, 11, 1, tzinfo=UTC)
        self._ids = itertools.count(1)
        self._calls = 0
        self.fail_next = 0  # the next N calls raise a retriable error
        self.crash_after: int | None = None  # apply stores K items, then raises
        self.refuse: set[str] = set()  # refs answered FAILED

    @property
    def calls(self) -> int:
        return self._calls

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def put(self, obj: str, **fields: Any) -> str:
        """Create a record directly in the CRM (as a salesperson would)."""
        rid = str(next(self._ids))
        self.records[obj][rid] = dict(fields)
        self.modified[(obj, rid)] = self.tick()
        return rid

    def edit(self, obj: str, rid: str, **fields: Any) -> None:
        self.records[obj][rid].update(fields)
        self.modified[(obj, rid)] = self.tick()

    def _enter(self) -> None:
        self._calls += 1
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectorError("CRM answered 503", retriable=True, retry_after=2)

    def test(self) -> None:
        self._enter()

    def report(self, request: ReportRequest) -> ReportPage:
        self._enter()
        after = datetime.fromisoformat(request.cursor) if request.cursor else None
        rows = sorted((t, rid) for (o, rid), t in self.modified.items() if o == request.object
                      and (after is None or t > after) and t <= request.until)
        page = rows[: request.page_size]
        records = [RemoteRecord(request.object, rid, dict(self.records[request.object][rid]),
                                modified_at=t) for t, rid in page]
        cursor = page[-1][0].isoformat() if page else request.cursor
        return ReportPage(records, cursor, more=len(rows) > len(page))

    def apply(self, order: Sequence[OrderItem]) -> list[ItemResult]:
        self._enter()
        results = []
        for n, item in enumerate(order):
            if self.crash_after is not None and n >= self.crash_after:
                self.crash_after = None
                raise RuntimeError("connection lost mid-batch")
            store = self.records[item.object]
            if item.ref in self.refuse:
                results.append(ItemResult(item.ref, Outcome.FAILED, reason="email: invalid"))
            elif item.operation == Operation.CREATE:
                rid = str(next(self._ids))
                store[rid] = dict(item.fields)
                self.modified[(item.object, rid)] = self.tick()
                results.append(ItemResult(item.ref, Outcome.CREATED, remote_id=rid))
            elif item.remote_id not in store:
                results.append(ItemResult(item.ref, Outcome.NOT_FOUND))
            else:
                store[item.remote_id].update(item.fields)
                self.modified[(item.object, item.remote_id)] = self.tick()
                results.append(ItemResult(item.ref, Outcome.UPDATED, remote_id=item.remote_id))
        return results

    def find(self, object: str, match: Mapping[str, Any]) -> list[RemoteRecord]:
        self._enter()
        return [RemoteRecord(object, rid, dict(f)) for rid, f in self.records[object].items()
                if all(str(f.get(k, "")).lower() == str(v).lower() for k, v in match.items())]
