"""Every organisation reverse-IP lookup found, ISPs and hosting networks included.

This is the administrator's list (to reclassify, block or merge); sales reads the narrower
Website Visitors (`leadbridge.views.website_visitors`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, select
from sqlalchemy.sql.elements import ColumnElement

from leadbridge.identify.organisations import Organisation
from leadbridge.store.tables import organisations
from leadbridge.views.paging import DEFAULT_PER_PAGE, Page, fetch_page


@dataclass(frozen=True, slots=True)
class OrganisationFilter:
    type: str | None = None
    blocked: bool | None = None
    q: str | None = None  # part of the name or domain, any case


def _conditions(f: OrganisationFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if f.type is not None:
        where.append(organisations.c.type == f.type)
    if f.blocked is not None:
        where.append(organisations.c.blocked.is_(f.blocked))
    if f.q:
        needle = f.q.strip().lower()
        where.append(
            func.lower(organisations.c.name).contains(needle, autoescape=True)
            | func.lower(func.coalesce(organisations.c.domain, "")).contains(needle,
                                                                           autoescape=True)
        )
    return where


def list_organisations(
    conn: Connection,
    filters: OrganisationFilter | None = None,
    *,
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
) -> Page[Organisation]:
    """One page of organisations, most hits first, and how many pass the filters in all."""
    query = (select(organisations).where(*_conditions(filters or OrganisationFilter()))
             .order_by(organisations.c.hit_count.desc(), organisations.c.id))
    return fetch_page(conn, query, page, per_page, lambda row: Organisation(**row._mapping))
