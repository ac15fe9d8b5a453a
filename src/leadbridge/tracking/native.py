"""The native JSON tracking API (`POST /api/v1/hits`): one hit, a list, or {"hits": [...]}.

`ip` and an `occurred_at` older than 24 hours need an API key (server-side tracking), as `cip`
and `cdt` do in the Matomo protocol. A `form` hit with an `email` identifies the browser.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from leadbridge.errors import InputError
from leadbridge.tracking.matomo import (
    UNAUTHENTICATED_CDT_WINDOW,
    campaign_from_url,
    parse_http_url,
)
from leadbridge.tracking.request import EVENT, FORM, PAGEVIEW, PING, TrackingRequest


class NativeEvent(BaseModel):
    model_config = {"extra": "forbid"}
    category: str = Field(min_length=1, max_length=300)
    action: str = Field(min_length=1, max_length=300)
    name: str | None = Field(default=None, max_length=300)
    value: float | None = None


class NativeCampaign(BaseModel):
    model_config = {"extra": "forbid"}
    name: str | None = Field(default=None, max_length=300)
    source: str | None = Field(default=None, max_length=300)
    medium: str | None = Field(default=None, max_length=300)
    keyword: str | None = Field(default=None, max_length=300)
    content: str | None = Field(default=None, max_length=300)


class NativeHit(BaseModel):
    model_config = {"extra": "forbid"}
    site_id: int = Field(gt=0)
    url: str = Field(min_length=1, max_length=4096)
    kind: Literal["pageview", "event", "ping", "form"] = "pageview"
    title: str | None = Field(default=None, max_length=1024)
    referrer: str | None = Field(default=None, max_length=4096)
    visitor_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    user_id: str | None = Field(default=None, max_length=320)
    email: str | None = Field(default=None, max_length=320)
    name: str | None = Field(default=None, max_length=300)
    contact_token: str | None = Field(default=None, max_length=500)
    user_agent: str | None = Field(default=None, max_length=2000)
    lang: str | None = Field(default=None, max_length=100)
    ip: str | None = Field(default=None, max_length=45)
    occurred_at: datetime | None = None
    resolution: str | None = Field(default=None, pattern=r"^\d{1,5}x\d{1,5}$")
    event: NativeEvent | None = None
    campaign: NativeCampaign | None = None

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            return v.replace(tzinfo=UTC)  # a time without a zone is UTC
        return v


def native_to_request(
    hit: NativeHit, *, peer: str | None, user_agent: str, authenticated: bool, now: datetime
) -> TrackingRequest:
    url = parse_http_url(hit.url, "url")
    if hit.ip and not authenticated:
        raise InputError("ip needs an API key (Authorization: Bearer ...)")
    if hit.occurred_at is not None:
        if hit.occurred_at > now + timedelta(minutes=5):
            raise InputError(f"occurred_at {hit.occurred_at.isoformat()} is in the future")
        if not authenticated and now - hit.occurred_at > UNAUTHENTICATED_CDT_WINDOW:
            raise InputError("occurred_at older than 24 hours needs an API key")
    kind = {"pageview": PAGEVIEW, "event": EVENT, "ping": PING, "form": FORM}[hit.kind]
    if kind == EVENT and hit.event is None:
        raise InputError('an event hit needs "event": {"category": .., "action": ..}')
    if kind == FORM and not (hit.email or hit.user_id):
        raise InputError("a form hit needs the email (or user_id) it identifies")
    found = campaign_from_url(url)
    c = hit.campaign or NativeCampaign()
    event = hit.event or (NativeEvent(category="form", action="submit") if kind == FORM else None)
    return TrackingRequest(
        site_id=hit.site_id,
        url=url,
        kind=kind,
        action_name=hit.title,
        referrer=hit.referrer,
        visitor_key=hit.visitor_id.lower() if hit.visitor_id else None,
        user_id=hit.email or hit.user_id,
        contact_name=hit.name,
        contact_token=hit.contact_token or found.get("contact_token"),
        user_agent=hit.user_agent if hit.user_agent is not None else user_agent,
        lang=hit.lang,
        ip=hit.ip or peer,
        occurred_at=hit.occurred_at,
        resolution=hit.resolution,
        campaign_name=c.name or found.get("name"),
        campaign_source=c.source or found.get("source"),
        campaign_medium=c.medium or found.get("medium"),
        campaign_keyword=c.keyword or found.get("keyword"),
        campaign_content=c.content or found.get("content"),
        click_id="click_id" in found,
        event_category=event.category if event else None,
        event_action=event.action if event else None,
        event_name=event.name if event else None,
        event_value=event.value if event else None,
    )
