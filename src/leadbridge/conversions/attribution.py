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
direct / (none) / (none): every credited conversion has a path, so reports add up to the
conversions' totals.

The touches of a conversion, with their weights, are its path (`attribution_paths`), named by
a digest of the touches and shared by every conversion that came the same way: crediting a
conversion stores one path id on it, and only paths never seen before are written.

`attribute_batch` runs inside the intake's transaction for each batch, before the batch is
stored: one query reads the sessions of every visitor in the batch, one more the marketing
sources it needs, and the batch's paths go to the database in one statement.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from uuid import UUID

from sqlalchemy import Connection, Subquery, bindparam, select, update

from leadbridge.conversions.model import MatchedConversion
from leadbridge.conversions.sessions import (
    DIRECT_TOUCH,
    Touch,
    VisitorSessions,
    read_sessions,
    start_key,
)
from leadbridge.errors import InputError
from leadbridge.store.tables import (
    attribution_paths,
    calls,
    conversions,
    crm_marketing_refs,
    marketing_sources,
    utc_day,
)
from leadbridge.tracking.channels import CAMPAIGN, NO_SOURCE, VISIT_GAP

LOOKBACK = timedelta(days=90)
MODELS = ("first_touch", "last_touch", "linear", "position_based")
WEIGHT_COLUMNS = {"first_touch": "w_first", "last_touch": "w_last", "linear": "w_linear",
                  "position_based": "w_position"}
_PATH_SQL: dict[str, str] = {}

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
                    lookback: timedelta = LOOKBACK,
                    timeout: timedelta = VISIT_GAP) -> list[str]:
    """The attribution path of each conversion, in order; new paths are written (in the
    caller's transaction) and the caller stores each path id on its conversion."""
    if not batch:
        return []
    to_time = start_key(conn.dialect.name)
    with_visitor = [c.browser_visitor_id for c in batch if c.browser_visitor_id is not None]
    sessions: dict[int, VisitorSessions] = {}
    if with_visitor:
        moments = [c.occurred_at for c in batch if c.browser_visitor_id is not None]
        sessions = read_sessions(conn, with_visitor, since=min(moments) - lookback,
                                 until=max(moments), timeout=timeout)
    paths: list[tuple[Touch, ...] | None] = []
    fallback: set[int] = set()
    for conversion in batch:
        visitor = sessions.get(conversion.browser_visitor_id)  # type: ignore[arg-type]
        if visitor is not None:
            starts = visitor.starts
            at = to_time(conversion.occurred_at)
            hi = bisect.bisect_right(starts, at)
            lo = bisect.bisect_left(starts, at - lookback, 0, hi)
            if hi > lo:
                paths.append(tuple(visitor.touches[lo:hi]))
                continue
        paths.append(None)
        if conversion.marketing_source_id is not None:
            fallback.add(conversion.marketing_source_id)
    sources = _marketing_touches(conn, fallback)
    ids: list[str] = []
    new: dict[str, tuple[Touch, ...]] = {}
    for conversion, path in zip(batch, paths, strict=True):
        if path is None:
            path = (sources.get(conversion.marketing_source_id, DIRECT_TOUCH),)
        pid = path_id(path)
        ids.append(pid)
        new[pid] = path
    _store_paths(conn, new)
    return ids


@lru_cache(maxsize=65_536)
def path_id(path: tuple[Touch, ...]) -> str:
    """The digest naming a path: the same touches in the same order, the same id."""
    # JSON: any text a hit carried (control characters too) reads back one way only
    text = json.dumps(path, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _store_paths(conn: Connection, paths: dict[str, tuple[Touch, ...]]) -> None:
    """Add the paths not stored yet (a path never changes, so a stored one is left as is).

    Rows go in (path_id, touch) order, so two writers adding the same new paths take their
    row locks in the same order and one waits for the other instead of deadlocking."""
    if not paths:
        return
    dialect = conn.dialect.name
    sql = _PATH_SQL.get(dialect)
    if sql is None:
        columns = [c.name for c in attribution_paths.columns]
        markers = ", ".join(["?" if dialect == "sqlite" else "%s"] * len(columns))
        sql = _PATH_SQL[dialect] = (
            f"INSERT INTO attribution_paths ({', '.join(columns)}) VALUES ({markers}) "
            "ON CONFLICT (path_id, touch) DO NOTHING")
    conn.exec_driver_sql(sql, [(pid, i, len(path), *touch, *w)
                               for pid, path in sorted(paths.items())
                               for i, (touch, w) in enumerate(zip(path, weights(len(path)),
                                                                  strict=True))])


def credit_rows() -> Subquery:
    """Each credited conversion's touches as rows (what write-back reads): conversion_id,
    touch, touches, channel, source, campaign and the four weights (w_first, w_last, w_linear,
    w_position)."""
    c, p = conversions.c, attribution_paths.c
    return (select(c.id.label("conversion_id"), p.touch, p.touches, p.channel, p.source,
                   p.campaign, p.w_first, p.w_last, p.w_linear, p.w_position)
            .select_from(conversions.join(attribution_paths, p.path_id == c.path_id))
            .subquery("credits"))


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
    paths; all conversions, or those named, or those that occurred since `since`.
    A conversion's visitor is its own, else its call's. Returns how many were credited."""
    visitor = calls.c.browser_visitor_id
    query = (select(conversions.c.id, conversions.c.browser_visitor_id, visitor.label("via_call"),
                    conversions.c.occurred_at, conversions.c.amount, conversions.c.margin,
                    conversions.c.currency, conversions.c.action, conversions.c.contact_id,
                    conversions.c.call_id, calls.c.marketing_source_id)
             .select_from(conversions.outerjoin(calls, calls.c.id == conversions.c.call_id))
             .order_by(conversions.c.id))
    if since is not None:
        query = query.where(conversions.c.occurred_on >= utc_day(since),
                            conversions.c.occurred_at >= since)
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
            conn.execute(update(conversions).where(conversions.c.id == bindparam("cid"))
                         .values(path_id=bindparam("pid")),
                         [{"cid": cid, "pid": pid}
                          for cid, pid in zip(ids, attribute_batch(conn, piece), strict=True)])
            # CRM records showing these conversions' attribution are written again
            conn.execute(update(crm_marketing_refs)
                         .where(crm_marketing_refs.c.conversion_id.in_(ids)).values(due=True))
            done += len(piece)
    return done
