"""One page of a listing and the total behind it, the same way for every resource."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Select, func, select

from leadbridge.errors import InputError

T = TypeVar("T")
MAX_PER_PAGE = 200
DEFAULT_PER_PAGE = 50


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """`items` of page `page` (from 1); `total` counts every row the filters let through."""

    items: list[T]
    total: int
    page: int
    per_page: int


def check_paging(page: int, per_page: int) -> None:
    if page < 1:
        raise InputError(f"page={page}: pages are numbered from 1")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise InputError(f"per_page={per_page}: give 1 to {MAX_PER_PAGE}")


def fetch_page(
    conn: Connection,
    query: Select[Any],
    page: int,
    per_page: int,
    build: Callable[[Any], T],
) -> Page[T]:
    """Run an ordered `query` for one page and count all of its rows."""
    check_paging(page, per_page)
    total = conn.execute(
        select(func.count()).select_from(query.order_by(None).subquery())
    ).scalar_one()
    found = conn.execute(query.limit(per_page).offset((page - 1) * per_page))
    return Page([build(row) for row in found], int(total), page, per_page)
