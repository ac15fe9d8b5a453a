"""CRM records carrying marketing ids, and each matched conversion's attribution written back.

A sync cycle reads the leads, contacts and opportunities of each connection (through the
engine's hook, `crmsync`); every record that carries a visitor id or a call reference is kept
in `crm_marketing_refs` with the latest conversion it matches (same visitor id, or same call
reference). When that conversion changes (a newer one arrives, or it is credited again), the
record is *due*: the next cycle writes the channel, source and campaign of the conversion's
touch under the configured model (`conversions.writeback_model`, last touch by default) to
the record's marketing fields, through the connector. Under linear and position-based models
the touch with the largest share is written (the later one on a tie).

What was written is remembered, so an unchanged attribution is never sent twice; a record
the CRM refuses keeps the reason (`write_error`) and is not retried until its conversion
changes; a record deleted or converted in the CRM is forgotten (a converted lead's
successor is read like any other record).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, and_, delete, insert, or_, select, update

from leadbridge.connectors.base import ItemResult, Operation, OrderItem, Outcome, RemoteRecord
from leadbridge.connectors.marketing import CALL_REF, CAMPAIGN, CHANNEL, SOURCE, VISITOR_ID
from leadbridge.conversions.attribution import WEIGHT_COLUMNS, credit_rows
from leadbridge.store.tables import (
    conversions,
    crm_marketing_refs,
    hub_state,
)

_CHUNK = 500
_PAGE = 5000
refs = crm_marketing_refs


def marketing_ids(record: RemoteRecord) -> tuple[str | None, str | None]:
    """The visitor id (lower case, as the intake keeps it) and call reference on a record."""
    visitor = record.fields.get(VISITOR_ID)
    call = record.fields.get(CALL_REF)
    visitor_key = str(visitor).strip().lower()[:64] or None if visitor is not None else None
    call_ref = str(call).strip()[:100] or None if call is not None else None
    return visitor_key, call_ref


def note_records(conn: Connection, connection_id: int, records: Sequence[RemoteRecord],
                 now: datetime) -> None:
    """Keep track of which records carry marketing ids (one page of a cycle's reading)."""
    by_key = {(r.object, r.id): r for r in records}
    if not by_key:
        return
    known: dict[tuple[str, str], Any] = {}
    for obj in {o for o, _ in by_key}:
        ids = [i for o, i in by_key if o == obj]
        for start in range(0, len(ids), _CHUNK):
            for found in conn.execute(select(refs).where(
                    refs.c.connection_id == connection_id, refs.c.remote_object == obj,
                    refs.c.remote_id.in_(ids[start : start + _CHUNK]))):
                known[(found.remote_object, found.remote_id)] = found
    changed: list[tuple[str, str, str | None, str | None]] = []
    for (obj, remote_id), record in by_key.items():
        visitor_key, call_ref = (None, None) if record.deleted else marketing_ids(record)
        row: Any = known.get((obj, remote_id))
        if visitor_key is None and call_ref is None:
            if row is not None:
                conn.execute(delete(refs).where(*_pk(connection_id, obj, remote_id)))
            continue
        if row is None:
            conn.execute(insert(refs).values(
                connection_id=connection_id, remote_object=obj, remote_id=remote_id,
                visitor_key=visitor_key, call_ref=call_ref, seen_at=now, due=False))
        elif (row.visitor_key, row.call_ref) != (visitor_key, call_ref):
            conn.execute(update(refs).where(*_pk(connection_id, obj, remote_id)).values(
                visitor_key=visitor_key, call_ref=call_ref, seen_at=now, conversion_id=None,
                conversion_at=None, due=False))
        else:
            continue
        changed.append((obj, remote_id, visitor_key, call_ref))
    if changed:
        _match_records(conn, connection_id, changed)


def _match_records(conn: Connection, connection_id: int,
                   changed: list[tuple[str, str, str | None, str | None]]) -> None:
    """Find the latest conversion of records whose ids are new or changed."""
    visitors = {v for _, _, v, _ in changed if v}
    call_refs = {c for _, _, _, c in changed if c}
    latest: dict[tuple[str, str], tuple[datetime, UUID]] = {}
    conditions = []
    if visitors:
        conditions.append(conversions.c.visitor_key.in_(sorted(visitors)))
    if call_refs:
        conditions.append(conversions.c.call_ref.in_(sorted(call_refs)))
    for cid, at, visitor_key, call_ref in conn.execute(
            select(conversions.c.id, conversions.c.occurred_at, conversions.c.visitor_key,
                   conversions.c.call_ref).where(or_(*conditions))):
        for key in (("v", visitor_key), ("c", call_ref)):
            if key[1] is not None and (key not in latest or latest[key] < (at, cid)):
                latest[key] = (at, cid)
    for obj, remote_id, visitor_key, call_ref in changed:
        found = [latest[k] for k in (("v", visitor_key), ("c", call_ref)) if k in latest]
        if found:
            at, cid = max(found)
            conn.execute(update(refs).where(*_pk(connection_id, obj, remote_id)).values(
                conversion_id=cid, conversion_at=at, due=True))


def note_conversions(conn: Connection, connection_id: int) -> None:
    """Records matching conversions stored since the last cycle become due (when the new
    conversion is their latest)."""
    state_key = f"conversions.writeback.{connection_id}"
    last = conn.execute(select(hub_state.c.value).where(hub_state.c.key == state_key)).scalar()
    query = (select(conversions.c.id, conversions.c.occurred_at, conversions.c.visitor_key,
                    conversions.c.call_ref).order_by(conversions.c.id).limit(_PAGE))
    newest = UUID(last) if last is not None else None
    while True:  # a page at a time, by key: memory stays flat however many there are
        page = conn.execute(query if newest is None else
                            query.where(conversions.c.id > newest)).all()
        if not page:
            break
        newest = page[-1].id
        batch = [row for row in page if row.visitor_key is not None or row.call_ref is not None]
        for start in range(0, len(batch), _CHUNK):
            _note_batch(conn, connection_id, batch[start : start + _CHUNK])
    if newest is not None and str(newest) != last:
        if last is None:
            conn.execute(insert(hub_state).values(key=state_key, value=str(newest)))
        else:
            conn.execute(update(hub_state).where(hub_state.c.key == state_key)
                         .values(value=str(newest)))


def _note_batch(conn: Connection, connection_id: int, batch: list[Any]) -> None:
    visitors = {r.visitor_key for r in batch if r.visitor_key}
    call_refs = {r.call_ref for r in batch if r.call_ref}
    matches = or_(refs.c.visitor_key.in_(sorted(visitors)), refs.c.call_ref.in_(sorted(call_refs)))
    found = conn.execute(select(refs.c.remote_object, refs.c.remote_id, refs.c.visitor_key,
                                refs.c.call_ref, refs.c.conversion_id, refs.c.conversion_at)
                         .where(refs.c.connection_id == connection_id, matches)).all()
    for ref in found:
        best = (ref.conversion_at, ref.conversion_id) if ref.conversion_id else None
        for row in batch:
            same = ((row.visitor_key and row.visitor_key == ref.visitor_key)
                    or (row.call_ref and row.call_ref == ref.call_ref))
            if same and (best is None or best < (row.occurred_at, row.id)):
                best = (row.occurred_at, row.id)
        if best is not None and best[1] != ref.conversion_id:
            conn.execute(update(refs).where(
                *_pk(connection_id, ref.remote_object, ref.remote_id)).values(
                conversion_at=best[0], conversion_id=best[1], due=True))


def touch_values(conn: Connection, conversion_ids: Sequence[UUID],
                 model: str) -> dict[UUID, dict[str, str]]:
    """The marketing field values of each conversion's touch under `model`."""
    c = credit_rows().c
    best: dict[UUID, tuple[float, int, dict[str, str]]] = {}
    for start in range(0, len(conversion_ids), _CHUNK):
        for row in conn.execute(select(c.conversion_id, c.touch, c.channel, c.source,
                                       c.campaign, c[WEIGHT_COLUMNS[model]].label("w"))
                                .where(c.conversion_id.in_(
                                    conversion_ids[start:start + _CHUNK]))):
            rank = (row.w, row.touch)
            held = best.get(row.conversion_id)
            if held is None or rank > held[:2]:
                best[row.conversion_id] = (row.w, row.touch, {
                    CHANNEL: row.channel, SOURCE: row.source, CAMPAIGN: row.campaign})
    return {cid: values for cid, (_, _, values) in best.items()}


def due_updates(conn: Connection, connection_id: int, model: str) -> list[OrderItem]:
    """Updates for the records due; those whose values were already written are settled."""
    due = conn.execute(select(refs.c.remote_object, refs.c.remote_id, refs.c.conversion_id,
                              refs.c.written)
                       .where(refs.c.connection_id == connection_id, refs.c.due)
                       .order_by(refs.c.remote_object, refs.c.remote_id)).all()
    values = touch_values(conn, sorted({r.conversion_id for r in due if r.conversion_id}), model)
    items: list[OrderItem] = []
    for row in due:
        wanted = values.get(row.conversion_id)
        if wanted is None or wanted == (row.written or {}):
            conn.execute(update(refs).where(
                *_pk(connection_id, row.remote_object, row.remote_id)).values(due=False))
            continue
        items.append(OrderItem(f"{row.remote_object}/{row.remote_id}", row.remote_object,
                               Operation.UPDATE, row.remote_id, wanted))
    return items


def settle(conn: Connection, connection_id: int, order: Sequence[OrderItem],
           results: Sequence[ItemResult], now: datetime) -> None:
    """Record the CRM's answers to write-back updates."""
    for item, result in zip(order, results, strict=True):
        where = _pk(connection_id, item.object, item.remote_id or "")
        if result.outcome == Outcome.UPDATED:
            conn.execute(update(refs).where(*where).values(
                due=False, written=dict(item.fields), written_at=now, write_error=None))
        elif result.outcome in (Outcome.NOT_FOUND, Outcome.REMAPPED):
            conn.execute(delete(refs).where(*where))
        elif result.outcome == Outcome.RETRY_LATER:
            conn.execute(update(refs).where(*where).values(write_error=result.reason))
        else:
            conn.execute(update(refs).where(*where).values(
                due=False, write_error=result.reason or result.outcome.value))


def _pk(connection_id: int, obj: str, remote_id: str) -> tuple[Any, ...]:
    return (refs.c.connection_id == connection_id, refs.c.remote_object == obj,
            refs.c.remote_id == remote_id)


def ref_rows(conn: Connection, connection_id: int) -> Mapping[tuple[str, str], Any]:
    """Every record noted for a connection (for people and tests)."""
    return {(r.remote_object, r.remote_id): r for r in conn.execute(
        select(refs).where(and_(refs.c.connection_id == connection_id)))}
