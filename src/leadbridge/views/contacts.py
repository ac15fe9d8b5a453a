"""Contacts as people read them: who, since when, how interested, from which organisation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, func, select
from sqlalchemy.sql.elements import ColumnElement

from leadbridge.errors import NotFound
from leadbridge.store.tables import contacts, organisations
from leadbridge.views.context import ViewContext
from leadbridge.views.paging import DEFAULT_PER_PAGE, Page, fetch_page


@dataclass(frozen=True, slots=True)
class Contact:
    """A known person with the current score of their visits."""

    id: int
    email: str | None
    external_id: str | None
    name: str | None
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    score: float
    band: str
    hit_count: int
    organisation_id: int | None
    organisation_name: str | None


@dataclass(frozen=True, slots=True)
class ContactFilter:
    q: str | None = None  # part of the email, name or CRM id, any case
    min_score: float | None = None


_COLUMNS = (
    contacts.c.id, contacts.c.email, contacts.c.external_id, contacts.c.name,
    contacts.c.first_seen_at, contacts.c.last_seen_at, contacts.c.score_weight,
    contacts.c.hit_count, contacts.c.organisation_id,
    organisations.c.name.label("organisation_name"),
)


def _build(ctx: ViewContext, row: Any) -> Contact:
    score = ctx.score(row.score_weight)
    return Contact(
        id=row.id, email=row.email, external_id=row.external_id, name=row.name,
        first_seen_at=row.first_seen_at, last_seen_at=row.last_seen_at, score=score,
        band=ctx.band(score), hit_count=int(row.hit_count or 0),
        organisation_id=row.organisation_id, organisation_name=row.organisation_name,
    )


def _base() -> Select[Any]:
    return select(*_COLUMNS).select_from(
        contacts.outerjoin(organisations, contacts.c.organisation_id == organisations.c.id)
    )


def _conditions(f: ContactFilter, ctx: ViewContext) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if f.min_score is not None:
        where.append(contacts.c.score_weight >= ctx.weight_at_least(f.min_score))
    if f.q:
        needle = f.q.strip().lower()
        where.append(
            func.lower(func.coalesce(contacts.c.email, "")).contains(needle, autoescape=True)
            | func.lower(func.coalesce(contacts.c.name, "")).contains(needle, autoescape=True)
            | func.lower(func.coalesce(contacts.c.external_id, "")).contains(needle,
                                                                           autoescape=True)
        )
    return where


def list_contacts(
    conn: Connection,
    ctx: ViewContext,
    filters: ContactFilter | None = None,
    *,
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
) -> Page[Contact]:
    """One page of contacts, hottest first, and how many pass the filters in all."""
    f = filters or ContactFilter()
    query = _base().where(*_conditions(f, ctx)).order_by(
        contacts.c.score_weight.desc(), contacts.c.last_seen_at.desc().nulls_last(),
        contacts.c.id.desc(),
    )
    return fetch_page(conn, query, page, per_page, lambda row: _build(ctx, row))


def get_contact(conn: Connection, ctx: ViewContext, contact_id: int) -> Contact:
    """The contact `contact_id`; NotFound when there is none."""
    row = conn.execute(_base().where(contacts.c.id == contact_id)).first()
    if row is None:
        raise NotFound(f"contact {contact_id} does not exist")
    return _build(ctx, row)
