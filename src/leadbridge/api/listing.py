"""What every listing endpoint shares: paging parameters, the page envelope, day-or-time values.

Query parameters are declared as Pydantic models (`Annotated[XQuery, Query()]`) that forbid
unknown names, so a misspelt filter is a 422 naming it instead of being silently ignored.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from leadbridge.hub import Hub
from leadbridge.views.context import ViewContext
from leadbridge.views.paging import DEFAULT_PER_PAGE, MAX_PER_PAGE

T = TypeVar("T")


def _day_or_moment(value: Any) -> Any:
    if isinstance(value, str) and len(value.strip()) == 10:
        return date.fromisoformat(value.strip())
    return value


Moment = Annotated[datetime | date, BeforeValidator(_day_or_moment)]
"""`2024-05-01` (a whole day, UTC) or an ISO 8601 time (`2024-05-01T10:00:00Z`)."""


class PagingQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    page: int = Field(default=1, ge=1, description="page number, from 1")
    per_page: int = Field(default=DEFAULT_PER_PAGE, ge=1, le=MAX_PER_PAGE,
                          description=f"rows per page, at most {MAX_PER_PAGE}")


class ListPage(BaseModel, Generic[T]):
    """One page of rows and how many rows the filters let through in all."""

    items: list[T]
    total: int
    page: int
    per_page: int


def view_context(hub: Hub) -> ViewContext:
    """Scores read at this moment with the hub's decay and bands."""
    return ViewContext.of(hub.settings, hub.decay)
