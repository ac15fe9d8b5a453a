"""Hits as people read them: page views and events with their page name, score and source.

Each hit names its Website Visitor (when the organisation behind it is one; an ISP's hits
carry none) and its contact (when the browser has been identified). Bots are left out unless
asked for. Newest first.

Time on page is read, not stored: the time until the browser's next hit, when that came within
the visit (`VISIT_GAP`), as Matomo counts it. The last page of a visit has the time its
heartbeat pings measured (stored by the intake), or none. Intake writes nothing for it when a
page is followed by another, and a hit that arrives late (a bulk import, `cdt` in the past)
still gives the page before it the right time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, Select, and_, func, select
from sqlalchemy.sql.elements import ColumnElement

from leadbridge.identify.organisations import is_website_visitor
from leadbridge.store.tables import contacts, hits, organisations
from leadbridge.tracking.channels import VISIT_GAP
from leadbridge.views.paging import DEFAULT_PER_PAGE, Page, fetch_page

Moment = date | datetime


@dataclass(frozen=True, slots=True)
class Hit:
    """One stored hit with the names of who made it."""

    id: uuid.UUID
    occurred_at: datetime
    site_id: int
    website_visitor_id: int | None
    website_visitor_name: str | None
    contact_id: int | None
    contact_email: str | None
    kind: str
    url: str
    page_name: str | None
    page_title: str | None
    category: str | None
    score: float
    referrer: str | None
    channel: str | None
    campaign_name: str | None
    campaign_source: str | None
    campaign_medium: str | None
    campaign_keyword: str | None
    campaign_content: str | None
    event_category: str | None
    event_action: str | None
    event_name: str | None
    event_value: float | None
    device: str | None
    browser: str | None
    os: str | None
    country: str | None
    time_on_page: int | None
    is_bot: bool


@dataclass(frozen=True, slots=True)
class HitFilter:
    """What to list; None means "any". `url` is a substring, or a glob when it holds `*`."""

    url: str | None = None
    category: str | None = None
    min_score: float | None = None  # the page's own score
    website_visitor_id: int | None = None
    contact_id: int | None = None
    site_id: int | None = None
    occurred_from: Moment | None = None  # a day means from its start (UTC)
    occurred_to: Moment | None = None  # a day means up to its end (UTC)
    include_bots: bool = False


_next = hits.alias("next_hit")
_NEXT_AT = (select(_next.c.occurred_at)
            .where(_next.c.browser_visitor_id == hits.c.browser_visitor_id,
                   _next.c.occurred_at > hits.c.occurred_at)
            .order_by(_next.c.occurred_at).limit(1)
            .scalar_subquery().label("next_at"))

_COLUMNS = (
    hits.c.id, hits.c.occurred_at, hits.c.site_id,
    organisations.c.id.label("website_visitor_id"),
    organisations.c.name.label("website_visitor_name"),
    hits.c.contact_id, contacts.c.email.label("contact_email"),
    hits.c.kind, hits.c.url, hits.c.page_name, hits.c.page_title, hits.c.category,
    hits.c.score, hits.c.referrer, hits.c.channel, hits.c.campaign_name,
    hits.c.campaign_source, hits.c.campaign_medium, hits.c.campaign_keyword,
    hits.c.campaign_content, hits.c.event_category, hits.c.event_action, hits.c.event_name,
    hits.c.event_value, hits.c.device, hits.c.browser, hits.c.os, hits.c.country,
    hits.c.time_on_page, hits.c.is_bot, _NEXT_AT,
)


def _build(row: Any) -> Hit:
    fields = row._asdict()
    next_at = fields.pop("next_at")
    return Hit(**{**fields, "is_bot": bool(row.is_bot), "score": float(row.score),
                  "time_on_page": time_on_page(row.occurred_at, next_at, row.time_on_page,
                                               is_bot=bool(row.is_bot))})


def time_on_page(occurred_at: datetime, next_at: datetime | None, pinged: int | None, *,
                 is_bot: bool = False) -> int | None:
    """Seconds until the browser's next hit of the same visit; else what pings measured."""
    if is_bot:
        return None
    if next_at is not None and next_at - occurred_at <= VISIT_GAP:
        return int((next_at - occurred_at).total_seconds())
    return pinged


def url_condition(pattern: str) -> ColumnElement[bool]:
    """Any case: a substring of the URL, or a whole-URL glob when `pattern` holds `*`."""
    needle = pattern.strip().lower()
    url = func.lower(hits.c.url)
    if "*" not in needle:
        return url.contains(needle, autoescape=True)
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return url.like(escaped.replace("*", "%"), escape="\\")


def _start(moment: Moment) -> datetime:
    if isinstance(moment, datetime):
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.combine(moment, time.min, tzinfo=UTC)


def _time_conditions(f: HitFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if f.occurred_from is not None:
        where.append(hits.c.occurred_at >= _start(f.occurred_from))
    if isinstance(f.occurred_to, datetime):
        where.append(hits.c.occurred_at <= _start(f.occurred_to))
    elif f.occurred_to is not None:
        where.append(hits.c.occurred_at < _start(f.occurred_to + timedelta(days=1)))
    return where


def _conditions(f: HitFilter) -> list[ColumnElement[bool]]:
    where = _time_conditions(f)
    if not f.include_bots:
        where.append(hits.c.is_bot.is_(False))
    if f.url:
        where.append(url_condition(f.url))
    if f.category:
        where.append(hits.c.category == f.category)
    if f.min_score is not None:
        where.append(hits.c.score >= f.min_score)
    if f.website_visitor_id is not None:
        where.append(hits.c.organisation_id == f.website_visitor_id)
        where.append(organisations.c.id.is_not(None))
    if f.contact_id is not None:
        where.append(hits.c.contact_id == f.contact_id)
    if f.site_id is not None:
        where.append(hits.c.site_id == f.site_id)
    return where


def _query(f: HitFilter) -> Select[Any]:
    joined = (
        hits.outerjoin(organisations, and_(hits.c.organisation_id == organisations.c.id,
                                           is_website_visitor()))
        .outerjoin(contacts, hits.c.contact_id == contacts.c.id)
    )
    return (select(*_COLUMNS).select_from(joined).where(*_conditions(f))
            .order_by(hits.c.occurred_at.desc(), hits.c.id.desc()))


def list_hits(
    conn: Connection,
    filters: HitFilter | None = None,
    *,
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
) -> Page[Hit]:
    """One page of hits passing `filters`, newest first, and how many pass in all."""
    return fetch_page(conn, _query(filters or HitFilter()), page, per_page, _build)


def recent_hits(conn: Connection, filters: HitFilter, limit: int) -> list[Hit]:
    """The newest `limit` hits passing `filters` (for one visitor's or contact's page)."""
    return [_build(r) for r in conn.execute(_query(filters).limit(limit))]
