"""Reports on attributed conversions, and on CRM records whose marketing ids lead nowhere.

The attribution report sums, per channel, source or campaign and per currency, the credited
conversions, revenue and margin of the conversions that occurred in a period, under one
model. Shares are rounded to cents (conversions to hundredths) so that each column adds up
exactly to the period's totals, which the report carries too: the largest remainders get the
cents that plain rounding would lose or add (on a tie, the first in alphabetical order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, Float, and_, cast, func, literal_column, select

from leadbridge.conversions.attribution import WEIGHT_COLUMNS, check_model
from leadbridge.errors import InputError
from leadbridge.store.tables import (
    attribution_paths,
    browser_visitors,
    calls,
    connections,
    conversions,
    crm_marketing_refs,
    hits,
    utc_day,
)

DIMENSIONS = ("channel", "source", "campaign")
INTERVALS = ("day", "week", "month")
CENT = Decimal("0.01")
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class ReportRow:
    period: str | None  # the day, week (its Monday) or month, with `interval`
    key: str  # the channel, source or campaign
    currency: str | None  # None: conversions without an amount
    conversions: Decimal  # credited conversions (fractions under linear and position-based)
    revenue: Decimal
    margin: Decimal


@dataclass(frozen=True, slots=True)
class Totals:
    period: str | None
    currency: str | None
    conversions: int
    revenue: Decimal
    margin: Decimal


@dataclass(frozen=True, slots=True)
class AttributionReport:
    model: str
    by: str
    since: datetime | None
    until: datetime | None
    action: str | None
    interval: str | None = None
    rows: list[ReportRow] = field(default_factory=list)
    totals: list[Totals] = field(default_factory=list)


def check_dimension(by: str) -> str:
    name = by.strip().lower()
    if name not in DIMENSIONS:
        raise InputError(f"cannot report by {by!r}; use one of {', '.join(DIMENSIONS)}")
    return name


def check_interval(interval: str | None) -> str | None:
    if interval is None or not interval.strip() or interval.strip().lower() == "none":
        return None
    name = interval.strip().lower()
    if name not in INTERVALS:
        raise InputError(f"cannot report per {interval!r}; use one of {', '.join(INTERVALS)}")
    return name


def _bucket(dialect: str, interval: str | None) -> ColumnElement[Any]:
    """The UTC day, week (its Monday) or month of a conversion, as ISO text."""
    moment = conversions.c.occurred_at
    if interval is None:
        return literal_column("NULL")
    if dialect == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC
        if interval == "week":
            return func.date(moment, "weekday 0", "-6 days")
        return func.substr(moment, 1, 10 if interval == "day" else 7)
    utc = func.timezone("UTC", moment)
    if interval == "week":
        return func.to_char(func.date_trunc("week", utc), "YYYY-MM-DD")
    return func.to_char(utc, "YYYY-MM-DD" if interval == "day" else "YYYY-MM")


def parse_moment(raw: str | None, name: str, *, end: bool = False) -> datetime | None:
    """A period bound from ISO 8601 text: a date alone is a whole UTC day (`end`: the start of
    the next day, so the day is included); a time without a zone is UTC."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    try:
        if len(text) == 10 and "T" not in text:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1 if end else 0), time(), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"bad {name}: {text[:40]!r} is not an ISO 8601 date or time (e.g. "
                         "2026-03-01 or 2026-03-01T14:30:00+02:00)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_period(since: str | None, until: str | None) -> tuple[datetime | None,
                                                                  datetime | None]:
    """`from` and `to` as given by a person: both days included; `to` exclusive as a time."""
    start = parse_moment(since, "from")
    stop = parse_moment(until, "to", end=True)
    if start is not None and stop is not None and start >= stop:
        raise InputError(f"the period is empty: from {since} is not before to {until}")
    return start, stop


def attribution_report(conn: Connection, *, model: str, by: str,
                       since: datetime | None = None, until: datetime | None = None,
                       action: str | None = None,
                       interval: str | None = None) -> AttributionReport:
    """Conversions, revenue and margin per `by` value and currency under `model`, for
    conversions that occurred in [since, until); per day, week or month with `interval`."""
    model, by, interval = check_model(model), check_dimension(by), check_interval(interval)
    cc, c = attribution_paths.c, conversions.c
    weight = cc[WEIGHT_COLUMNS[model]]
    bucket = _bucket(conn.dialect.name, interval).label("period")
    grouped = [bucket] if interval is not None else []  # PostgreSQL groups by no constant
    period = []
    if since is not None:  # the day finds them (an index), the time picks them
        period += [c.occurred_on >= utc_day(since), c.occurred_at >= since]
    if until is not None:
        period += [c.occurred_on <= utc_day(until), c.occurred_at < until]
    if action:
        period.append(c.action == action)
    joined = conversions.join(attribution_paths, cc.path_id == c.path_id)
    raw = conn.execute(
        select(bucket, cc[by], c.currency, func.sum(weight),
               func.sum(cast(c.amount, Float) * weight), func.sum(cast(c.margin, Float) * weight))
        .select_from(joined).where(weight > 0, *period)
        .group_by(*grouped, cc[by], c.currency).order_by(*grouped, c.currency, cc[by])).all()
    totals = [Totals(when, currency, int(n), Decimal(revenue or 0).quantize(CENT),
                     Decimal(margin or 0).quantize(CENT))
              for when, currency, n, revenue, margin in conn.execute(
                  select(bucket, c.currency, func.count(), func.sum(c.amount), func.sum(c.margin))
                  .select_from(joined).where(cc.touch == 0, *period)
                  .group_by(*grouped, c.currency).order_by(*grouped, c.currency))]
    rows: list[ReportRow] = []
    for total in totals:
        mine = [r for r in raw if (r[0], r[2]) == (total.period, total.currency)]
        counts = _apportion([float(r[3] or 0) for r in mine], Decimal(total.conversions))
        revenue = _apportion([float(r[4] or 0) for r in mine], total.revenue)
        margin = _apportion([float(r[5] or 0) for r in mine], total.margin)
        rows += [ReportRow(r[0], r[1], total.currency, n, rev, mar)
                 for r, n, rev, mar in zip(mine, counts, revenue, margin, strict=True)]
    rows.sort(key=lambda r: (r.period or "", r.currency or "", -r.revenue, -r.conversions,
                             r.key))
    return AttributionReport(model, by, since, until, action, interval, rows, totals)


def _apportion(values: Sequence[float], total: Decimal) -> list[Decimal]:
    """Values rounded to cents that add up to `total` (largest remainders first)."""
    floors = [Decimal(v).quantize(CENT, rounding=ROUND_FLOOR) for v in values]
    left = int((total - sum(floors, Decimal(0))) / CENT)
    if not 0 <= left <= len(values):  # the values do not add up to the total: plain rounding
        return [Decimal(v).quantize(CENT) for v in values]
    # largest remainder first (float noise ignored); on a tie, the first row (by key)
    order = sorted(range(len(values)),
                   key=lambda i: (-round(float(Decimal(values[i]) - floors[i]), 9), i))
    for i in order[:left]:
        floors[i] += CENT
    return floors


@dataclass(frozen=True, slots=True)
class RecordWithoutMarketing:
    connection: str
    object: str
    id: str
    visitor_key: str | None
    call_ref: str | None
    reason: str


def crm_records_without_marketing(conn: Connection, connection: str | None = None,
                                  ) -> list[RecordWithoutMarketing]:
    """CRM records that carry a visitor id or call reference which leads to no visit and no
    call the hub knows: a mistyped id, a visitor never tracked, a call not recorded."""
    query = (select(connections.c.name, crm_marketing_refs)
             .join(connections, connections.c.id == crm_marketing_refs.c.connection_id)
             .order_by(connections.c.name, crm_marketing_refs.c.remote_object,
                       crm_marketing_refs.c.remote_id))
    if connection is not None:
        query = query.where(connections.c.name == connection)
    refs = conn.execute(query).all()
    keys = sorted({r.visitor_key for r in refs if r.visitor_key})
    call_refs = sorted({r.call_ref for r in refs if r.call_ref})
    seen: dict[str, list[int]] = {}
    for start in range(0, len(keys), _CHUNK):
        for key, bv in conn.execute(select(browser_visitors.c.visitor_key, browser_visitors.c.id)
                                    .where(browser_visitors.c.visitor_key.in_(
                                        keys[start : start + _CHUNK]))):
            seen.setdefault(key, []).append(bv)
    visited: set[int] = set()
    ids = sorted({bv for found in seen.values() for bv in found})
    for start in range(0, len(ids), _CHUNK):
        visited.update(conn.execute(select(hits.c.browser_visitor_id).distinct().where(
            and_(hits.c.browser_visitor_id.in_(ids[start : start + _CHUNK]),
                 hits.c.is_bot.is_(False)))).scalars())
    known_calls: set[str] = set()
    for start in range(0, len(call_refs), _CHUNK):
        known_calls.update(conn.execute(select(calls.c.call_ref).where(
            calls.c.call_ref.in_(call_refs[start : start + _CHUNK]))).scalars())
    found: list[RecordWithoutMarketing] = []
    for r in refs:
        reasons: list[str] = []
        has_visits = bool(r.visitor_key and any(bv in visited for bv in seen.get(r.visitor_key,
                                                                                  [])))
        has_call = bool(r.call_ref and r.call_ref in known_calls)
        if has_visits or has_call:
            continue
        if r.visitor_key:
            reasons.append(f"visitor id {r.visitor_key}: "
                           + ("no visits recorded" if r.visitor_key in seen
                              else "never seen by the tracker"))
        if r.call_ref:
            reasons.append(f"call reference {r.call_ref}: no such call recorded")
        found.append(RecordWithoutMarketing(r.name, r.remote_object, r.remote_id,
                                            r.visitor_key, r.call_ref, "; ".join(reasons)))
    return found
