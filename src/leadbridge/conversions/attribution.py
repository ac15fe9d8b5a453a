"""Crediting conversions to the touches that led to them, under four models at once.

The touches of a conversion are the sessions of its browser visitor (`sessions`) that started
within `LOOKBACK` (90 days) before it, up to its own time, oldest first. Each touch gets a
weight under every model, and a conversion's weights add up to 1 under each:

- first touch: the first session has it all;
- last touch: the last session before the conversion has it all;
- linear: each of the n sessions has 1/n;
- position-based: 40 % to the first, 40 % to the last, the other 20 % shared by the ones in
  between; one touch has 100 %, two have 50 % each.

Direct sessions count as touches like any other (no "last non-direct" rule). A conversion
without a web touch (a call from no web session, a visitor id with no hits in the window) is
credited in full to the marketing source of the call's tracking number, else to
direct / (none) / (none): every conversion has credit rows, so reports add up to the
conversions' totals.

`attribute_batch` runs inside the intake's transaction for each batch: one query reads the
session starts of every visitor in the batch, one more the marketing sources it needs, and
the credit rows go to the database in one bulk statement.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, delete, select, update

from leadbridge.conversions.model import MatchedConversion
from leadbridge.conversions.sessions import (
    DIRECT_TOUCH,
    SESSION_TIMEOUT,
    Touch,
    VisitorSessions,
    read_sessions,
)
from leadbridge.errors import InputError
from leadbridge.store.bulk import BulkInsert, time_converter, uuid_converter
from leadbridge.store.tables import (
    calls,
    conversion_credits,
    conversions,
    crm_marketing_refs,
    marketing_sources,
)
from leadbridge.tracking.channels import CAMPAIGN, NO_SOURCE

LOOKBACK = timedelta(days=90)
MODELS = ("first_touch", "last_touch", "linear", "position_based")
WEIGHT_COLUMNS = {"first_touch": "w_first", "last_touch": "w_last", "linear": "w_linear",
                  "position_based": "w_position"}
_BULK: dict[str, BulkInsert] = {}

Weights = tuple[float, float, float, float]  # first, last, linear, position-based


def check_model(name: str) -> str:
    """The model's name as stored, or InputError listing the models there are."""
    model = name.strip().lower().replace("-", "_")
    aliases = {"first": "first_touch", "last": "last_touch", "position": "position_based"}
    model = aliases.get(model, model)
    if model not in MODELS:
        raise InputError(f"unknown attribution model {name!r}; use one of {', '.join(MODELS)}")
    return model


@lru_cache(maxsize=256)
def weights(touches: int) -> tuple[Weights, ...]:
    """Each touch's weight under the four models, for a conversion with `touches` touches."""
    if touches < 1:
        raise ValueError("a conversion has at least one touch")
    out: list[Weights] = []
    for i in range(touches):
        first = 1.0 if i == 0 else 0.0
        last = 1.0 if i == touches - 1 else 0.0
        if touches == 1:
            position = 1.0
        elif touches == 2:
            position = 0.5
        elif i in (0, touches - 1):
            position = 0.4
        else:
            position = 0.2 / (touches - 2)
        out.append((first, last, 1.0 / touches, position))
    return tuple(out)


def attribute_batch(conn: Connection, batch: Sequence[MatchedConversion], *,
                    lookback: timedelta = LOOKBACK, timeout: timedelta = SESSION_TIMEOUT) -> None:
    """Write the credit rows of newly stored conversions (in the caller's transaction).

    The conversions must have no credit rows yet; `reattribute` replaces existing ones.
    """
    if not batch:
        return
    dialect = conn.dialect.name
    to_time, to_uuid = _time_key(dialect), uuid_converter(dialect)
    with_visitor = [c for c in batch if c.browser_visitor_id is not None]
    sessions: dict[int, VisitorSessions] = {}
    if with_visitor:
        sessions = read_sessions(
            conn, [c.browser_visitor_id for c in with_visitor if c.browser_visitor_id],
            since=min(c.occurred_at for c in with_visitor) - lookback,
            until=max(c.occurred_at for c in with_visitor), timeout=timeout)
    rows: list[tuple[Any, ...]] = []
    fallback: list[MatchedConversion] = []
    for conversion in batch:
        visitor = sessions.get(conversion.browser_visitor_id)  # type: ignore[arg-type]
        if visitor is not None:
            starts = visitor.starts
            hi = bisect.bisect_right(starts, to_time(conversion.occurred_at))
            lo = bisect.bisect_left(starts, to_time(conversion.occurred_at - lookback), 0, hi)
            if hi > lo:
                cid = to_uuid(conversion.id)
                n = hi - lo
                for i, (w, start, touch) in enumerate(zip(
                        weights(n), starts[lo:hi], visitor.touches[lo:hi], strict=True)):
                    rows.append((cid, i, n, *touch, start, *w))
                continue
        fallback.append(conversion)
    if fallback:
        sources = _marketing_touches(conn, {c.marketing_source_id for c in fallback
                                            if c.marketing_source_id is not None})
        for conversion in fallback:
            touch = sources.get(conversion.marketing_source_id, DIRECT_TOUCH)
            rows.append((to_uuid(conversion.id), 0, 1, *touch, None, *weights(1)[0]))
    bulk = _BULK.get(dialect)
    if bulk is None:
        bulk = _BULK[dialect] = BulkInsert(conversion_credits, dialect)
    conn.exec_driver_sql(bulk.sql, rows)


def _time_key(dialect: str) -> Callable[[datetime], Any]:
    """A conversion's time in the form session starts come in (see `VisitorSessions`)."""
    if dialect != "sqlite":
        return time_converter(dialect)
    slow = time_converter(dialect)

    def sqlite_text(moment: datetime) -> Any:
        if moment.tzinfo is UTC:  # the usual case: one call instead of three
            return moment.isoformat(" ", "microseconds")[:26]
        return slow(moment)

    return sqlite_text


def _marketing_touches(conn: Connection, ids: set[int]) -> dict[int | None, Touch]:
    """The touch a call's marketing source stands for (channel `campaign` if it names none)."""
    if not ids:
        return {}
    found: dict[int | None, Touch] = {}
    for row in conn.execute(select(marketing_sources).where(marketing_sources.c.id.in_(ids))):
        found[row.id] = ((row.channel or CAMPAIGN)[:20],
                         (row.source or row.name or NO_SOURCE)[:300],
                         (row.campaign or NO_SOURCE)[:300])
    return found


def reattribute(conn: Connection, conversion_ids: Iterable[UUID] | None = None, *,
                since: datetime | None = None, chunk: int = 5000) -> int:
    """Credit stored conversions again (after a late match, or new hits), replacing their
    credit rows; all conversions, or those named, or those that occurred since `since`.
    A conversion's visitor is its own, else its call's. Returns how many were credited."""
    visitor = calls.c.browser_visitor_id
    query = (select(conversions.c.id, conversions.c.browser_visitor_id, visitor.label("via_call"),
                    conversions.c.occurred_at, conversions.c.amount, conversions.c.margin,
                    conversions.c.currency, conversions.c.action, conversions.c.contact_id,
                    conversions.c.call_id, calls.c.marketing_source_id)
             .select_from(conversions.outerjoin(calls, calls.c.id == conversions.c.call_id))
             .order_by(conversions.c.id))
    if since is not None:
        query = query.where(conversions.c.occurred_at >= since)
    wanted = None if conversion_ids is None else sorted(set(conversion_ids))
    done = 0
    parts = ([query] if wanted is None else
             [query.where(conversions.c.id.in_(wanted[i : i + chunk]))
              for i in range(0, len(wanted), chunk)])
    for part in parts:
        batch = [MatchedConversion(
            id=row.id, browser_visitor_id=row.browser_visitor_id or row.via_call,
            occurred_at=row.occurred_at, amount=row.amount, margin=row.margin,
            currency=row.currency, action=row.action, contact_id=row.contact_id,
            call_id=row.call_id, marketing_source_id=row.marketing_source_id)
            for row in conn.execute(part)]
        for start in range(0, len(batch), chunk):
            piece = batch[start : start + chunk]
            ids = [c.id for c in piece]
            conn.execute(delete(conversion_credits).where(
                conversion_credits.c.conversion_id.in_(ids)))
            attribute_batch(conn, piece)
            # CRM records showing these conversions' attribution are written again
            conn.execute(update(crm_marketing_refs)
                         .where(crm_marketing_refs.c.conversion_id.in_(ids)).values(due=True))
            done += len(piece)
    return done
