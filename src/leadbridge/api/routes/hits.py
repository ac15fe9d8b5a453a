"""Hits: read page views and events with their analytics, newest first.

`GET /api/v1/hits` lives beside the tracking endpoint `POST /api/v1/hits` (a plain Starlette
route registered first): Starlette keeps looking when only the method differs, so each
method reaches its own handler.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from leadbridge.api.deps import ConnDep, CurrentKey
from leadbridge.api.listing import ListPage, Moment, PagingQuery
from leadbridge.views.hits import Hit, HitFilter, list_hits

router = APIRouter(prefix="/api/v1/hits", tags=["hits"])


class CampaignPublic(BaseModel):
    name: str | None
    source: str | None
    medium: str | None
    keyword: str | None
    content: str | None


class EventPublic(BaseModel):
    category: str | None
    action: str | None
    name: str | None
    value: float | None


class HitPublic(BaseModel):
    id: uuid.UUID
    occurred_at: datetime
    site_id: int
    website_visitor_id: int | None
    website_visitor_name: str | None
    contact_id: int | None
    contact_email: str | None
    kind: str
    url: str
    page_name: str | None = Field(description="the friendly name from the page rules")
    page_title: str | None
    category: str | None
    score: float = Field(description="what this page or event adds to a score")
    referrer: str | None
    channel: str | None
    campaign: CampaignPublic | None
    event: EventPublic | None
    device: str | None
    browser: str | None
    os: str | None
    country: str | None
    time_on_page: int | None = Field(description="seconds until the next page of the visit")
    is_bot: bool

    @classmethod
    def of(cls, hit: Hit) -> HitPublic:
        campaign = CampaignPublic(name=hit.campaign_name, source=hit.campaign_source,
                                  medium=hit.campaign_medium, keyword=hit.campaign_keyword,
                                  content=hit.campaign_content)
        event = EventPublic(category=hit.event_category, action=hit.event_action,
                            name=hit.event_name, value=hit.event_value)
        return cls(
            id=hit.id, occurred_at=hit.occurred_at, site_id=hit.site_id,
            website_visitor_id=hit.website_visitor_id,
            website_visitor_name=hit.website_visitor_name, contact_id=hit.contact_id,
            contact_email=hit.contact_email, kind=hit.kind, url=hit.url,
            page_name=hit.page_name, page_title=hit.page_title, category=hit.category,
            score=hit.score, referrer=hit.referrer, channel=hit.channel,
            campaign=campaign if any(campaign.model_dump().values()) else None,
            event=event if any(v is not None for v in event.model_dump().values()) else None,
            device=hit.device, browser=hit.browser, os=hit.os, country=hit.country,
            time_on_page=hit.time_on_page, is_bot=hit.is_bot,
        )


class HitQuery(PagingQuery):
    url: str | None = Field(default=None, min_length=1, max_length=2000,
                            description="part of the URL (any case), or a whole-URL glob with *")
    category: str | None = Field(default=None, min_length=1, max_length=100)
    min_score: float | None = Field(default=None, description="the page's own score, at least")
    website_visitor_id: int | None = Field(default=None, ge=1)
    contact_id: int | None = Field(default=None, ge=1)
    site_id: int | None = Field(default=None, ge=1)
    occurred_from: Moment | None = Field(default=None, description="a day or an ISO time")
    occurred_to: Moment | None = Field(default=None,
                                       description="a day (its end included) or an ISO time")
    include_bots: bool = False

    def to_filter(self) -> HitFilter:
        return HitFilter(
            url=self.url, category=self.category, min_score=self.min_score,
            website_visitor_id=self.website_visitor_id, contact_id=self.contact_id,
            site_id=self.site_id, occurred_from=self.occurred_from,
            occurred_to=self.occurred_to, include_bots=self.include_bots,
        )


class HitList(ListPage[HitPublic]):
    """One page of hits and the total behind it."""


@router.get("", response_model=HitList)
def get_hits(
    query: Annotated[HitQuery, Query()], conn: ConnDep, _key: CurrentKey
) -> HitList:
    """Hits passing every filter given, newest first; bots only with `include_bots=true`."""
    found = list_hits(conn, query.to_filter(), page=query.page, per_page=query.per_page)
    return HitList(items=[HitPublic.of(h) for h in found.items], total=found.total,
                   page=found.page, per_page=found.per_page)
