"""Website Visitors: the organisations behind visits that sales wants to see.

A Website Visitor is an organisation that passes `is_website_visitor()` (a company, school or
public body; not blocked, not merged into another). ISPs and hosting firms never appear here
unless a person reclassifies them. Listings take filters and the named saved views below;
the API, the permalink page and the CLI all read through these functions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Select, and_, exists, func, select
from sqlalchemy.sql.elements import ColumnElement

from leadbridge.errors import InputError, NotFound
from leadbridge.identify.organisations import WEBSITE_VISITOR_TYPES, is_website_visitor
from leadbridge.store.tables import hits, organisations
from leadbridge.views.context import ViewContext
from leadbridge.views.paging import DEFAULT_PER_PAGE, Page, fetch_page

Sort = Literal["score", "last_visit", "name"]
SORTS: tuple[Sort, ...] = ("score", "last_visit", "name")
_MERGE_HOPS = 20


@dataclass(frozen=True, slots=True)
class WebsiteVisitor:
    """One organisation as sales sees it, with its current score and band."""

    id: int
    name: str
    domain: str | None
    type: str
    first_visit_at: datetime | None
    last_visit_at: datetime | None
    score: float
    band: str
    hit_count: int
    owner: str | None
    crm_account_id: str | None
    employees: int | None
    industry: str | None
    address: str | None
    phone: str | None
    website: str | None
    country: str | None
    permalink: str


@dataclass(frozen=True, slots=True)
class SavedView:
    """A named, shared listing: how recent the last visit is, whether cold ones count, order."""

    name: str
    description: str
    last_visit_within_days: int
    above_lowest_band: bool
    sort: Sort


SAVED_VIEWS: dict[str, SavedView] = {
    v.name: v
    for v in (
        SavedView("last-6-months-by-score", "visited in the last 6 months, hottest first",
                  183, False, "score"),
        SavedView("active-leads", "warmer than the lowest band and visited in the last 30 days, "
                  "hottest first", 30, True, "score"),
    )
}


@dataclass(frozen=True, slots=True)
class WebsiteVisitorFilter:
    """What to list. Every field narrows the listing; None means "any"."""

    min_score: float | None = None
    category: str | None = None  # visited at least one page of this category
    visited_from: date | None = None  # last visit on or after this day (UTC)
    visited_to: date | None = None  # last visit on or before this day (UTC)
    type: str | None = None
    owner: str | None = None
    associated: bool | None = None  # linked to a CRM account or not
    q: str | None = None  # part of the name or domain, any case
    sort: Sort | None = None  # None: the saved view's order, else by score
    last_visit_within_days: int | None = None
    above_lowest_band: bool = False


def saved_view(name: str) -> SavedView:
    """The saved view called `name`; InputError lists the valid names otherwise."""
    found = SAVED_VIEWS.get(name)
    if found is None:
        valid = ", ".join(SAVED_VIEWS)
        raise InputError(f"unknown view {name!r}; the saved views are: {valid}")
    return found


def with_view(filters: WebsiteVisitorFilter, name: str | None) -> WebsiteVisitorFilter:
    """`filters` narrowed by the saved view `name` (an explicit sort still wins)."""
    if not name:
        return filters
    view = saved_view(name)
    return replace(filters, last_visit_within_days=view.last_visit_within_days,
                   above_lowest_band=view.above_lowest_band, sort=filters.sort or view.sort)


_COLUMNS = (
    organisations.c.id, organisations.c.name, organisations.c.domain, organisations.c.type,
    organisations.c.first_visit_at, organisations.c.last_visit_at, organisations.c.score_weight,
    organisations.c.hit_count, organisations.c.owner, organisations.c.crm_account_id,
    organisations.c.employees, organisations.c.industry, organisations.c.address,
    organisations.c.phone, organisations.c.website, organisations.c.country,
    organisations.c.permalink_token,
)


def _build(ctx: ViewContext, row: Any) -> WebsiteVisitor:
    score = ctx.score(row.score_weight)
    return WebsiteVisitor(
        id=row.id, name=row.name, domain=row.domain, type=row.type,
        first_visit_at=row.first_visit_at, last_visit_at=row.last_visit_at,
        score=score, band=ctx.band(score), hit_count=int(row.hit_count or 0),
        owner=row.owner, crm_account_id=row.crm_account_id, employees=row.employees,
        industry=row.industry, address=row.address, phone=row.phone, website=row.website,
        country=row.country, permalink=ctx.permalink(row.permalink_token),
    )


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _conditions(f: WebsiteVisitorFilter, ctx: ViewContext) -> list[ColumnElement[bool]]:
    org = organisations.c
    where: list[ColumnElement[bool]] = [is_website_visitor()]
    if f.min_score is not None:
        where.append(org.score_weight >= ctx.weight_at_least(f.min_score))
    if f.above_lowest_band:
        second = ctx.second_band_threshold()
        if second is None:
            where.append(org.id.is_(None))  # one band only: nobody is above the lowest
        else:
            where.append(org.score_weight >= ctx.weight_at_least(second))
    if f.last_visit_within_days is not None:
        where.append(org.last_visit_at >= ctx.now - timedelta(days=f.last_visit_within_days))
    if f.visited_from is not None:
        where.append(org.last_visit_at >= _day_start(f.visited_from))
    if f.visited_to is not None:
        where.append(org.last_visit_at < _day_start(f.visited_to + timedelta(days=1)))
    if f.type is not None:
        if f.type not in WEBSITE_VISITOR_TYPES:
            raise InputError(f"type {f.type!r} is not a website visitor type; give one of "
                             f"{', '.join(WEBSITE_VISITOR_TYPES)}")
        where.append(org.type == f.type)
    if f.owner is not None:
        where.append(func.lower(org.owner) == f.owner.strip().lower())
    if f.associated is not None:
        where.append(org.crm_account_id.is_not(None) if f.associated
                     else org.crm_account_id.is_(None))
    if f.q:
        needle = f.q.strip().lower()
        where.append(func.lower(org.name).contains(needle, autoescape=True)
                     | func.lower(func.coalesce(org.domain, "")).contains(needle,
                                                                          autoescape=True))
    if f.category:
        where.append(exists().where(hits.c.organisation_id == org.id,
                                    hits.c.category == f.category,
                                    hits.c.is_bot.is_(False)))
    return where


def _ordered(query: Select[Any], sort: Sort) -> Select[Any]:
    org = organisations.c
    if sort == "last_visit":
        return query.order_by(org.last_visit_at.desc().nulls_last(), org.id.desc())
    if sort == "name":
        return query.order_by(func.lower(org.name), org.id)
    return query.order_by(org.score_weight.desc(), org.last_visit_at.desc().nulls_last(),
                          org.id.desc())


def list_website_visitors(
    conn: Connection,
    ctx: ViewContext,
    filters: WebsiteVisitorFilter | None = None,
    *,
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
) -> Page[WebsiteVisitor]:
    """One page of Website Visitors passing `filters`, and how many pass in all."""
    f = filters or WebsiteVisitorFilter()
    query = _ordered(select(*_COLUMNS).where(and_(*_conditions(f, ctx))), f.sort or "score")
    return fetch_page(conn, query, page, per_page, lambda row: _build(ctx, row))


def get_website_visitor(conn: Connection, ctx: ViewContext, visitor_id: int) -> WebsiteVisitor:
    """The Website Visitor `visitor_id`; NotFound when there is none (or it is an ISP)."""
    row = conn.execute(select(*_COLUMNS).where(organisations.c.id == visitor_id,
                                               is_website_visitor())).first()
    if row is None:
        raise NotFound(f"website visitor {visitor_id} does not exist (or is an ISP, hosting "
                       "network, blocked or merged organisation)")
    return _build(ctx, row)


def website_visitor_by_token(
    conn: Connection, ctx: ViewContext, token: str
) -> WebsiteVisitor | None:
    """The Website Visitor behind a permalink token, or None."""
    row = conn.execute(select(*_COLUMNS).where(organisations.c.permalink_token == token,
                                               is_website_visitor())).first()
    return None if row is None else _build(ctx, row)


def survivor_token(conn: Connection, token: str) -> str | None:
    """For a permalink of an organisation merged into another: the survivor's token.

    Old links stay in CRM records after a merge; they should lead to the surviving record.
    """
    row = conn.execute(select(organisations.c.merged_into_id)
                       .where(organisations.c.permalink_token == token)).first()
    next_id = row.merged_into_id if row is not None else None
    for _ in range(_MERGE_HOPS):
        if next_id is None:
            return None
        found = conn.execute(select(organisations.c.merged_into_id,
                                    organisations.c.permalink_token)
                             .where(organisations.c.id == next_id)).first()
        if found is None:
            return None
        if found.merged_into_id is None:
            return str(found.permalink_token)
        next_id = found.merged_into_id
    return None
