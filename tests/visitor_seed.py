"""Seeding organisations, hits and contacts straight into the tables, for read-side tests.

Scores are given as the *current* score at `NOW`; the helpers turn them into stored weights
with the same decay the views read them with.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert

from leadbridge.config import DEFAULT_BANDS
from leadbridge.scoring.decay import Decay
from leadbridge.store.ids import new_id
from leadbridge.store.tables import contacts, hits, organisations
from leadbridge.views.context import ViewContext

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
DECAY = Decay(30.0, datetime(2025, 1, 1, tzinfo=UTC))


def context(now: datetime = NOW, public_url: str = "https://hub.example") -> ViewContext:
    return ViewContext(DECAY, dict(DEFAULT_BANDS), public_url, now)


def add_org(
    conn: Connection, name: str, *, score: float = 0.0, days_ago: float | None = 1.0,
    type: str = "company", now: datetime = NOW, decay: Decay = DECAY, **values: Any,
) -> tuple[int, str]:
    """An organisation with current score `score` whose last visit was `days_ago` days ago."""
    token = secrets.token_urlsafe(24)
    last = None if days_ago is None else now - timedelta(days=days_ago)
    row = {
        "name": name, "type": type, "type_set_by": "lookup", "confidence": 0.9,
        "source": "test", "blocked": False, "permalink_token": token,
        "first_visit_at": last - timedelta(days=3) if last else None, "last_visit_at": last,
        "hit_count": 1, "score_weight": decay.weight_threshold(score, now),
        "created_at": now, "updated_at": now, **values,
    }
    org_id = conn.execute(insert(organisations).values(row).returning(organisations.c.id))
    return int(org_id.scalar_one()), token


def add_contact(conn: Connection, email: str, *, score: float = 0.0, now: datetime = NOW,
                **values: Any) -> int:
    row = {"email": email, "created_at": now, "hit_count": 0,
           "score_weight": DECAY.weight_threshold(score, now), **values}
    return int(conn.execute(insert(contacts).values(row).returning(contacts.c.id)).scalar_one())


@dataclass
class HitSeed:
    url: str
    organisation_id: int | None = None
    category: str | None = None
    score: float = 1.0
    minutes_ago: float = 60.0
    is_bot: bool = False
    contact_id: int | None = None
    site_id: int = 1
    page_name: str | None = None
    time_on_page: int | None = None


def add_hits(conn: Connection, seeds: list[HitSeed], now: datetime = NOW) -> None:
    conn.execute(insert(hits), [{
        "id": new_id(), "site_id": s.site_id, "occurred_at": now - timedelta(minutes=s.minutes_ago),
        "kind": "pageview", "browser_visitor_id": 1, "contact_id": s.contact_id,
        "organisation_id": s.organisation_id, "url": s.url, "page_title": None,
        "page_name": s.page_name or s.url.rsplit("/", 1)[-1] or "/", "category": s.category,
        "score": s.score, "is_bot": s.is_bot, "channel": "direct", "device": "desktop",
        "time_on_page": s.time_on_page,
    } for s in seeds])


def seed_world(conn: Connection, now: datetime = NOW, decay: Decay = DECAY) -> dict[str, int]:
    """A small market: Website Visitors of every kind, and organisations that must never show.

    | name        | type       | score | last visit | notes                              |
    | Acme        | company    | 80    | 2 days     | owner Alice, CRM A-1, read pricing |
    | Globex      | company    | 30    | 20 days    | read docs                          |
    | Initech     | education  | 10    | 5 days     |                                    |
    | Umbrella    | government | 60    | 100 days   |                                    |
    | Old Corp    | company    | 90    | 200 days   |                                    |
    | Telekom     | isp        | 99    | 1 day      | never shown                        |
    | Blocked Inc | company    | 70    | 1 day      | blocked: never shown               |
    | Merged Ltd  | company    | 75    | 1 day      | merged into Acme: never shown      |
    """
    def org(name: str, score: float, days_ago: float, **values: Any) -> int:
        return add_org(conn, name, score=score, days_ago=days_ago, now=now, decay=decay,
                       **values)[0]

    ids: dict[str, int] = {}
    ids["acme"] = org("Acme", 80, 2, domain="acme.com", owner="Alice", crm_account_id="A-1")
    ids["globex"] = org("Globex", 30, 20, domain="globex.com")
    ids["initech"] = org("Initech", 10, 5, type="education", domain="initech.edu")
    ids["umbrella"] = org("Umbrella", 60, 100, type="government")
    ids["old"] = org("Old Corp", 90, 200)
    ids["telekom"] = org("Telekom", 99, 1, type="isp", domain="telekom.de")
    ids["blocked"] = org("Blocked Inc", 70, 1, blocked=True)
    ids["merged"] = org("Merged Ltd", 75, 1, merged_into_id=ids["acme"])
    add_hits(conn, [
        HitSeed("https://www.example.com/pricing", ids["acme"], "pricing", 10, 60 * 48),
        HitSeed("https://www.example.com/docs/api", ids["globex"], "docs", 2, 60 * 24 * 20),
        HitSeed("https://www.example.com/pricing", ids["telekom"], "pricing", 10, 60),
        HitSeed("https://www.example.com/pricing", ids["blocked"], "pricing", 10, 60),
        HitSeed("https://www.example.com/pricing", ids["initech"], "pricing", 10, 60,
                is_bot=True),
    ], now=now)
    return ids
