"""A batch of validated conversions: matched, de-duplicated, stored and attributed.

Every conversion ends as exactly one `Outcome`: accepted (stored), merged (a duplicate of one
stored before, counted and not stored twice) or rejected with a reason (its visitor id or call
reference names nothing the hub knows). Lookups are one query per batch and kind; the
accepted rows are credited by attribution and written, with their attribution paths, in one
executemany in the same transaction.

De-duplication rules (`conversions.dedupe`):
- `transaction_ref`: a conversion whose transaction reference was seen before is a duplicate;
- `action_ref_window`: only when the action is the same and the two times are at most
  `dedupe_window_minutes` apart.
A conversion without a transaction reference is a duplicate only of an identical one (every
field the same), so sending a file or a request twice never stores anything twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple
from uuid import UUID

from sqlalchemy import Column, Connection, MetaData, String, Table, insert

from leadbridge.conversions.attribution import attribute_batch
from leadbridge.conversions.fields import ConversionRow
from leadbridge.conversions.matching import find_calls, find_visitors, pick_visitor, rows_in, utc
from leadbridge.conversions.model import MatchedConversion
from leadbridge.store.bulk import BulkInsert, decimal_converter, time_converter, uuid_converter
from leadbridge.store.ids import new_id
from leadbridge.store.tables import UTCDateTime, conversions, utc_day

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
_COLUMNS = ["id", "action", "title", "occurred_at", "transaction_ref", "amount", "currency",
            "margin", "visitor_key", "call_ref", "browser_visitor_id", "call_id", "contact_id",
            "source", "import_id", "dedupe_key", "created_at", "path_id", "occurred_on"]
Source = Literal["api", "csv", "dropfolder", "crm"]
# the attribution path id of each conversion, in order (see attribution.attribute_batch)
AttributeBatch = Callable[[Connection, Sequence[MatchedConversion]], Sequence[str | None]]


class Outcome(NamedTuple):
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

    def duplicate(self, row: ConversionRow,
                  earlier: list[tuple[str, datetime | None]] | None) -> bool:
        """Whether a row with a transaction reference repeats one of `earlier` (same ref)."""
        if not earlier:
            return False
        if self.kind == "transaction_ref":
            return True
        return any(action == row.action and at is not None
                   and abs(at - row.occurred_at) <= self.window for action, at in earlier)


def _dry_run_table() -> Table:
    # what a dry run would have stored, so duplicates later in the same file are found; a
    # temporary table: SQLite keeps it outside the main database (no write lock taken)
    return Table("conversion_dry_run", MetaData(),
                 Column("dedupe_key", String(300), primary_key=True),
                 Column("transaction_ref", String(200)),
                 Column("action", String(100)),
                 Column("occurred_at", UTCDateTime()),
                 prefixes=["TEMPORARY"])


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
        dialect = conn.dialect.name
        self._insert = BulkInsert(conversions, dialect)
        assert self._insert.columns == _COLUMNS, "conversions' columns changed: update write()"
        self._convert = (time_converter(dialect), uuid_converter(dialect),
                         decimal_converter(dialect))
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

    def _earlier_refs(self, refs: set[str]) -> dict[str, list[tuple[str, datetime | None]]]:
        found: dict[str, list[tuple[str, datetime | None]]] = {}
        window = self.rule.kind == "action_ref_window"
        for table in self._tables:
            sql = (f"SELECT transaction_ref, action, occurred_at FROM {table.name} "
                   "WHERE transaction_ref IN ({in})")
            for ref, action, at in rows_in(self.conn, sql, refs):
                found.setdefault(ref, []).append((action, utc(at) if window else None))
        return found

    def _earlier_keys(self, keys: set[str]) -> set[str]:
        found: set[str] = set()
        for table in self._tables:
            sql = f"SELECT dedupe_key FROM {table.name} WHERE dedupe_key IN ({{in}})"
            found.update(key for (key,) in rows_in(self.conn, sql, keys))
        return found

    def write(self, rows: Sequence[ConversionRow]) -> list[Outcome]:
        """One outcome per row, in order. Runs in the caller's transaction."""
        conn = self.conn
        visitors = find_visitors(conn, {r.visitor_key for r in rows if r.visitor_key})
        calls = find_calls(conn, {r.call_ref for r in rows if r.call_ref})
        rule = self.rule
        refs = self._earlier_refs({r.transaction_ref for r in rows if r.transaction_ref})
        unreferenced = {r: rule.key(r) for r in rows if r.transaction_ref is None}
        earlier_keys = self._earlier_keys(set(unreferenced.values()))
        to_time, to_uuid, to_decimal = self._convert
        created_at = to_time(self._now())
        source, import_id = self.source, self.import_id
        outcomes: list[Outcome] = []
        stored: list[tuple[Any, ...]] = []
        scratch: list[dict[str, Any]] = []
        matched: list[MatchedConversion] = []
        days: list[Any] = []  # occurred_on: on SQLite the date part of the time's text
        text_times = conn.dialect.name == "sqlite"
        by_ref = rule.kind == "transaction_ref"
        duplicate, rule_key = rule.duplicate, rule.key
        scratch_table = self._scratch
        for row in rows:
            visitor_id = contact_id = call_id = source_id = None
            visitor_key = row.visitor_key
            if visitor_key is not None:
                candidates = visitors.get(visitor_key)
                visitor = (candidates[0] if candidates and len(candidates) == 1
                           and row.site_id is None else pick_visitor(candidates, row.site_id))
                if visitor is None:
                    where = f" on site {row.site_id}" if row.site_id is not None else ""
                    outcomes.append(Outcome(REJECTED, f"unknown visitor id: {visitor_key} "
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
                key = unreferenced[row]
                if key in earlier_keys:
                    outcomes.append(Outcome(MERGED, "duplicate of an identical conversion"))
                    continue
                earlier_keys.add(key)
            else:
                earlier = refs.get(ref)
                if earlier and (by_ref or duplicate(row, earlier)):
                    outcomes.append(Outcome(MERGED, f"duplicate of transaction {ref}"))
                    continue
                if earlier is None:
                    refs[ref] = [(row.action, row.occurred_at)]
                else:
                    earlier.append((row.action, row.occurred_at))
                key = "tx:" + ref if by_ref else rule_key(row)
            conversion_id = new_id()
            outcomes.append(Outcome(ACCEPTED, None, conversion_id))
            if scratch_table is not None:
                scratch.append({"dedupe_key": key, "transaction_ref": ref,
                                "action": row.action, "occurred_at": row.occurred_at})
                continue
            amount, margin = row.amount, row.margin
            at = to_time(row.occurred_at)
            # in the order of the conversions table's columns, less the last two
            stored.append((
                to_uuid(conversion_id), row.action, row.title, at, ref,
                None if amount is None else to_decimal(amount), row.currency,
                None if margin is None else to_decimal(margin), visitor_key, row.call_ref,
                visitor_id, call_id, contact_id, source, import_id, key, created_at))
            days.append(at[:10] if text_times else utc_day(row.occurred_at))
            matched.append(MatchedConversion(
                conversion_id, visitor_id, row.occurred_at, amount, margin, row.currency,
                row.action, contact_id, call_id, source_id))
        if scratch and self._scratch is not None:
            conn.execute(insert(self._scratch), scratch)
        if stored:
            paths = (self.attribute(conn, matched) if self.attribute is not None
                     else [None] * len(stored))
            conn.exec_driver_sql(self._insert.sql, [
                (*row, path, day) for row, path, day in zip(stored, paths, days, strict=True)])
        return outcomes
