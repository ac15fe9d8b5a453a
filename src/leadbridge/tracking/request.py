"""One tracking request as the intake understands it, whatever protocol it came in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

PAGEVIEW = "pageview"
EVENT = "event"
PING = "ping"
EMAIL_OPEN = "email_open"
FORM = "form"


@dataclass(slots=True)
class TrackingRequest:
    site_id: int
    url: str
    kind: str = PAGEVIEW
    action_name: str | None = None
    referrer: str | None = None
    visitor_key: str | None = None
    user_id: str | None = None
    contact_token: str | None = None
    contact_name: str | None = None
    user_agent: str = ""
    lang: str | None = None
    ip: str | None = None
    occurred_at: datetime | None = None  # None: the time it arrived
    resolution: str | None = None
    campaign_name: str | None = None
    campaign_source: str | None = None
    campaign_medium: str | None = None
    campaign_keyword: str | None = None
    campaign_content: str | None = None
    click_id: bool = False
    event_category: str | None = None
    event_action: str | None = None
    event_name: str | None = None
    event_value: float | None = None
    first_visit_at: datetime | None = None
    opted_out: bool = False
    send_image: bool = True
