"""A batch of validated conversions: matched, de-duplicated, stored and attributed.

Every conversion ends as exactly one `Outcome`: accepted (stored), merged (a duplicate of one
stored before, counted and not stored twice) or rejected with a reason (its visitor id or call
reference names nothing the hub knows). Lookups are one query per batch and kind; the
accepted rows are written with one executemany and handed to attribution in the same
transaction.

De-duplication rules (`conversions.dedupe`):
- `transaction_ref`: a conversion whose transaction reference was seen before is a duplicate;
- `action_ref_window`: only when the action is the same and the two times are at most
  `dedupe_window_minutes` apart.
A conversion without a transaction reference is a duplicate only of an identical one (every
field the same), so sending a file or a request twice never stores anything twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import Column, Connection, MetaData, String, Table, bindparam, insert, select

from leadbridge.conversions.attribution import attribute_batch
from leadbridge.conversions.fields import ConversionRow
from leadbridge.conversions.matching import find_calls, find_visitors, pick_visitor
from leadbridge.conversions.model import MatchedConversion
from leadbridge.store.bulk import BulkInsert
from leadbridge.store.ids import new_id
from leadbridge.store.tables import UTCDateTime, conversions

__all__ = [
    "ACCEPTED",
    "MERGED",
    "REJECTED",
    "AttributeBatch",
    "ConversionWriter",
    "DedupeRule",
    "Outcome",
]

ACCEPTED, MERGED, REJECTED = "accepted", "merged", "rejected"
Source = Literal["api", "csv", "dropfolder", "crm"]
AttributeBatch = Callable[[Connection, Sequence[MatchedConversion]], Any]
_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # accepted, merged, rejected
    reason: str | None = None
    conversion_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class DedupeRule:
    kind: Literal["transaction_ref", "action_ref_window"] = "transaction_ref"
    window: timedelta = timedelta(days=1)

    def key(self, row: ConversionRow) -> str:
        ref = row.transaction_ref
        if ref is None:
            return "row:" + row.fingerprint()
        if self.kind == "transaction_ref":
            return "tx:" + ref
        return f"aw:{row.action}:{ref}:{row.occurred_at.isoformat()}"

    def duplicate(self, row: ConversionRow, earlier: list[tuple[str, datetime]] | None) -> bool:
        """Whether a row with a transaction reference repeats one of `earlier` (same ref)."""
        if not earlier:
            return False
        if self.kind == "transaction_ref":
            return True
        return any(action == row.action and abs(at - row.occurred_at) <= self.window
                   for action, at in earlier)


def _dry_run_table() -> Table:
    # what a dry run would have stored, so duplicates later in the same file are found; a
    # temporary table: SQLite keeps it outside the main database (no write lock taken)
    return Table("conversion_dry_run", MetaData(),
                 Column("dedupe_key", String(300), primary_key=True),
                 Column("transaction_ref", String(200)),
                 Column("action", String(100)),
                 Column("occurred_at", UTCDateTime()),
                 prefixes=["TEMPORARY"])


def _chunks(values: Iterable[str]) -> Iterable[list[str]]:
    items = list(values)
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


class ConversionWriter:
    """Writes batches of conversions from one source (an import, an API request).

    Accepted conversions are attributed by `attribute` (attribution's `attribute_batch`; None
    leaves them unattributed). With `dry_run`, every check runs the same way and nothing is
    written to the hub's tables.
    Call `close()` when done (it drops a dry run's scratch table).
    """

    def __init__(self, conn: Connection, *, rule: DedupeRule, source: Source,
                 import_id: int | None = None, dry_run: bool = False,
                 attribute: AttributeBatch | None = attribute_batch,
                 now: Callable[[], datetime] | None = None) -> None:
        self.conn = conn
        self.rule = rule
        self.source = source
        self.import_id = import_id
        self.dry_run = dry_run
        self.attribute = attribute
        self._now = now or (lambda: datetime.now(UTC))
        self._insert = BulkInsert(conversions, conn.dialect.name)
        self._tables = [conversions]
        self._scratch: Table | None = None
        if dry_run:
            self._scratch = _dry_run_table()
            self._scratch.create(conn, checkfirst=True)
            self._tables.append(self._scratch)

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.drop(self.conn, checkfirst=True)
            self._scratch = None

    def _earlier_refs(self, refs: set[str]) -> dict[str, list[tuple[str, datetime]]]:
        found: dict[str, list[tuple[str, datetime]]] = {}
        for table in self._tables:
            query = (select(table.c.transaction_ref, table.c.action, table.c.occurred_at)
                     .where(table.c.transaction_ref.in_(bindparam("refs", expanding=True))))
            for chunk in _chunks(refs):
                for ref, action, at in self.conn.execute(query, {"refs": chunk}):
                    found.setdefault(ref, []).append((action, at))
        return found

    def _earlier_keys(self, keys: set[str]) -> set[str]:
        found: set[str] = set()
        for table in self._tables:
            query = (select(table.c.dedupe_key)
                     .where(table.c.dedupe_key.in_(bindparam("keys", expanding=True))))
            for chunk in _chunks(keys):
                found.update(self.conn.execute(query, {"keys": chunk}).scalars())
        return found

    def write(self, rows: Sequence[ConversionRow]) -> list[Outcome]:
        """One outcome per row, in order. Runs in the caller's transaction."""
        conn = self.conn
        visitors = find_visitors(conn, {r.visitor_key for r in rows if r.visitor_key})
        calls = find_calls(conn, {r.call_ref for r in rows if r.call_ref})
        rule = self.rule
        keys = [rule.key(r) for r in rows]
        refs = self._earlier_refs({r.transaction_ref for r in rows if r.transaction_ref})
        earlier_keys = self._earlier_keys({k for k, r in zip(keys, rows, strict=True)
                                           if r.transaction_ref is None})
        created_at = self._now()
        outcomes: list[Outcome] = []
        stored: list[dict[str, Any]] = []
        matched: list[MatchedConversion] = []
        for row, key in zip(rows, keys, strict=True):
            visitor_id = contact_id = call_id = source_id = None
            if row.visitor_key is not None:
                visitor = pick_visitor(visitors.get(row.visitor_key), row.site_id)
                if visitor is None:
                    where = f" on site {row.site_id}" if row.site_id is not None else ""
                    outcomes.append(Outcome(REJECTED, f"unknown visitor id: {row.visitor_key} "
                                                      f"was never seen by the tracker{where}"))
                    continue
                visitor_id, contact_id = visitor.id, visitor.contact_id
            if row.call_ref is not None:
                call = calls.get(row.call_ref)
                if call is None:
                    outcomes.append(Outcome(REJECTED, f"invalid call reference: "
                                                      f"{row.call_ref[:100]!r} is not a "
                                                      "recorded call"))
                    continue
                call_id, source_id = call.id, call.marketing_source_id
                if visitor_id is None:
                    visitor_id, contact_id = call.browser_visitor_id, call.contact_id
            ref = row.transaction_ref
            if ref is None:
                if key in earlier_keys:
                    outcomes.append(Outcome(MERGED, "duplicate of an identical conversion"))
                    continue
                earlier_keys.add(key)
            else:
                seen = refs.get(ref)
                if rule.duplicate(row, seen):
                    outcomes.append(Outcome(MERGED, f"duplicate of transaction {ref}"))
                    continue
                refs.setdefault(ref, []).append((row.action, row.occurred_at))
            conversion_id = new_id()
            outcomes.append(Outcome(ACCEPTED, None, conversion_id))
            stored.append({
                "id": conversion_id, "action": row.action, "title": row.title,
                "occurred_at": row.occurred_at, "transaction_ref": ref, "amount": row.amount,
                "currency": row.currency, "margin": row.margin,
                "visitor_key": row.visitor_key, "call_ref": row.call_ref,
                "browser_visitor_id": visitor_id, "call_id": call_id,
                "contact_id": contact_id, "source": self.source, "import_id": self.import_id,
                "dedupe_key": key, "created_at": created_at,
            })
            matched.append(MatchedConversion(
                id=conversion_id, browser_visitor_id=visitor_id, occurred_at=row.occurred_at,
                amount=row.amount, margin=row.margin, currency=row.currency,
                action=row.action, contact_id=contact_id, call_id=call_id,
                marketing_source_id=source_id))
        if stored:
            if self._scratch is not None:
                conn.execute(insert(self._scratch), [
                    {"dedupe_key": s["dedupe_key"], "transaction_ref": s["transaction_ref"],
                     "action": s["action"], "occurred_at": s["occurred_at"]} for s in stored])
            else:
                self._insert.execute(conn, stored)
                if self.attribute is not None:
                    self.attribute(conn, matched)
        return outcomes
