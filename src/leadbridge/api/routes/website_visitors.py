"""Website Visitors: the companies behind visits, with saved views, filters and their hits."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from leadbridge.api.deps import ConnDep, CurrentKey, HubDep
from leadbridge.api.listing import ListPage, PagingQuery, view_context
from leadbridge.api.routes.hits import HitPublic
from leadbridge.sync.accounts import create_account
from leadbridge.views.hits import HitFilter, recent_hits
from leadbridge.views.website_visitors import (
    SAVED_VIEWS,
    Sort,
    WebsiteVisitor,
    WebsiteVisitorFilter,
    get_website_visitor,
    list_website_visitors,
    with_view,
)

router = APIRouter(prefix="/api/v1/website-visitors", tags=["website visitors"])

WebsiteVisitorType = Literal["company", "education", "government"]


class WebsiteVisitorPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str = Field(description="the company's name")
    domain: str | None
    type: str = Field(description="company, education or government")
    first_visit_at: datetime | None
    last_visit_at: datetime | None
    score: float = Field(description="current score, decayed to now")
    band: str
    hit_count: int
    owner: str | None
    crm_account_id: str | None = Field(description="the associated CRM account")
    employees: int | None
    industry: str | None
    address: str | None
    phone: str | None
    website: str | None
    country: str | None
    permalink: str = Field(description="a page about this visitor that needs no API key")


class WebsiteVisitorDetail(WebsiteVisitorPublic):
    hits: list[HitPublic] = Field(description="the most recent hits, newest first")


class WebsiteVisitorList(ListPage[WebsiteVisitorPublic]):
    view: str | None


class WebsiteVisitorQuery(PagingQuery):
    view: str | None = Field(default=None, description="a saved view: " + ", ".join(
        f"{v.name} ({v.description})" for v in SAVED_VIEWS.values()))
    min_score: float | None = Field(default=None, ge=0)
    category: str | None = Field(default=None, min_length=1, max_length=100,
                                 description="visited a page of this category")
    visited_from: date | None = Field(default=None, description="last visit on or after (UTC)")
    visited_to: date | None = Field(default=None, description="last visit on or before (UTC)")
    type: WebsiteVisitorType | None = None
    owner: str | None = Field(default=None, min_length=1, max_length=200)
    associated: bool | None = Field(default=None, description="has a CRM account, or not")
    q: str | None = Field(default=None, min_length=1, max_length=200,
                          description="part of the name or domain")
    sort: Sort | None = Field(default=None, description="score (default), last_visit or name")

    @model_validator(mode="after")
    def _range(self) -> WebsiteVisitorQuery:
        if self.visited_from and self.visited_to and self.visited_from > self.visited_to:
            raise ValueError(f"visited_from {self.visited_from} is after visited_to "
                             f"{self.visited_to}")
        return self

    def to_filter(self) -> WebsiteVisitorFilter:
        return with_view(WebsiteVisitorFilter(
            min_score=self.min_score, category=self.category, visited_from=self.visited_from,
            visited_to=self.visited_to, type=self.type, owner=self.owner,
            associated=self.associated, q=self.q, sort=self.sort,
        ), self.view)


def _public(visitor: WebsiteVisitor) -> WebsiteVisitorPublic:
    return WebsiteVisitorPublic.model_validate(visitor)


@router.get("", response_model=WebsiteVisitorList)
def get_website_visitors(
    query: Annotated[WebsiteVisitorQuery, Query()], hub: HubDep, conn: ConnDep,
    _key: CurrentKey,
) -> WebsiteVisitorList:
    """Website Visitors passing a saved view and every filter given; hottest first by default.

    An unknown `view` is a 400 that lists the saved views.
    """
    found = list_website_visitors(conn, view_context(hub), query.to_filter(),
                                  page=query.page, per_page=query.per_page)
    return WebsiteVisitorList(items=[_public(v) for v in found.items], total=found.total,
                              page=found.page, per_page=found.per_page, view=query.view)


@router.get("/{visitor_id}", response_model=WebsiteVisitorDetail)
def get_one_website_visitor(
    visitor_id: int, hub: HubDep, conn: ConnDep, _key: CurrentKey,
    hits_limit: Annotated[int, Query(ge=0, le=500, description="how many recent hits")] = 50,
) -> WebsiteVisitorDetail:
    """One Website Visitor with its most recent hits (404 for ISPs, blocked or merged ones)."""
    visitor = get_website_visitor(conn, view_context(hub), visitor_id)
    hits = recent_hits(conn, HitFilter(website_visitor_id=visitor.id), hits_limit)
    return WebsiteVisitorDetail(**_public(visitor).model_dump(),
                                hits=[HitPublic.of(h) for h in hits])


class CreateAccountRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection: str | None = Field(default=None, min_length=1, max_length=100,
                                   description="the CRM connection; the only enabled one "
                                               "when left out")


class AccountLinkPublic(BaseModel):
    website_visitor_id: int
    connection: str
    crm_object: str = Field(description="the CRM object the account is, e.g. accounts")
    account_id: str = Field(description="the CRM account's id")
    outcome: Literal["created", "matched", "existing"] = Field(
        description="created: a new account; matched: an existing account with the same "
                    "domain or name; existing: the visitor was associated already")
    matched_by: str | None = Field(description="the match key that found the account")


@router.post("/{visitor_id}/create-account", response_model=AccountLinkPublic,
             responses={201: {"model": AccountLinkPublic}})
def post_create_account(
    visitor_id: int, hub: HubDep, _key: CurrentKey, response: Response,
    body: Annotated[CreateAccountRequest | None, Body()] = None,
) -> AccountLinkPublic:
    """Create a CRM account from this Website Visitor and associate the two — unless an
    account with its domain or name exists (then that one is associated) or it is associated
    already (nothing changes). 201 when an account was created, else 200; 404 for an unknown
    visitor or connection, 400 for an ISP, blocked or merged organisation or a visitor
    lacking a value the CRM requires, 409 while a sync cycle of the connection runs, 502
    when the CRM refuses or does not answer."""
    done = create_account(hub.engine, hub.settings, visitor_id,
                          body.connection if body else None)
    response.status_code = 201 if done.outcome == "created" else 200
    return AccountLinkPublic(website_visitor_id=done.website_visitor_id,
                             connection=done.connection, crm_object=done.crm_object,
                             account_id=done.account_id, outcome=done.outcome,
                             matched_by=done.matched_by)
