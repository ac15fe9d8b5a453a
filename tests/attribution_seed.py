"""Seeding visitors, hits, calls and conversions straight into the tables, for attribution tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, insert, select

from leadbridge.conversions.attribution import attribute_batch
from leadbridge.conversions.model import MatchedConversion
from leadbridge.store.ids import new_id
from leadbridge.store.tables import (
    browser_visitors,
    calls,
    conversions,
    hits,
    marketing_sources,
    sites,
    tracking_numbers,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class H:
    """One hit: minutes after T0, with its channel and campaign fields."""

    minute: float
    channel: str = "internal"
    referrer: str | None = None
    campaign: str | None = None
    source: str | None = None
    kind: str = "pageview"
    bot: bool = False


def site(conn: Connection) -> int:
    found = conn.execute(select(sites.c.id)).scalar()
    if found is not None:
        return int(found)
    return int(conn.execute(insert(sites).values(
        name="Shop", hosts=["www.example.com"], created_at=T0).returning(sites.c.id)).scalar_one())


def visitor(conn: Connection, key: str, *seeds: H, start: datetime = T0) -> int:
    """A browser visitor with the given hits; returns its id."""
    bv = int(conn.execute(insert(browser_visitors).values(
        site_id=site(conn), visitor_key=key, first_seen_at=start,
        last_seen_at=start).returning(browser_visitors.c.id)).scalar_one())
    add_hits(conn, bv, *seeds, start=start)
    return bv


def add_hits(conn: Connection, bv: int, *seeds: H, start: datetime = T0) -> None:
    rows = [{
        "id": new_id(), "site_id": site(conn), "occurred_at": start + timedelta(minutes=h.minute),
        "kind": h.kind, "browser_visitor_id": bv, "url": "https://www.example.com/",
        "score": 1.0, "is_bot": h.bot, "referrer": h.referrer, "channel": h.channel,
        "campaign_name": h.campaign, "campaign_source": h.source,
    } for h in seeds]
    if rows:
        conn.execute(insert(hits), rows)


def marketing_source(conn: Connection, name: str, number: str, **values: Any) -> int:
    ms = int(conn.execute(insert(marketing_sources).values(
        name=name, created_at=T0, **values).returning(marketing_sources.c.id)).scalar_one())
    conn.execute(insert(tracking_numbers).values(number=number, marketing_source_id=ms,
                                                 created_at=T0))
    return ms


def call(conn: Connection, ref: str, number: str, ms: int | None,
         bv: int | None = None) -> int:
    return int(conn.execute(insert(calls).values(
        call_ref=ref, tracking_number=number, started_at=T0, duration_s=60,
        browser_visitor_id=bv, marketing_source_id=ms, created_at=T0,
    ).returning(calls.c.id)).scalar_one())


def convert(conn: Connection, at: datetime, *, bv: int | None = None,
            amount: str | None = "100", margin: str | None = None, currency: str = "EUR",
            action: str = "sale", call_id: int | None = None, ms: int | None = None,
            visitor_key: str | None = None, call_ref: str | None = None,
            attribute: bool = True) -> UUID:
    """A stored conversion, attributed as the intake would do it."""
    cid = new_id()
    path = None
    if attribute:
        [path] = attribute_batch(conn, [MatchedConversion(
            cid, bv, at, Decimal(amount) if amount else None,
            Decimal(margin) if margin else None, currency if amount else None, action,
            call_id=call_id, marketing_source_id=ms)])
    conn.execute(insert(conversions).values(
        id=cid, action=action, occurred_at=at, amount=Decimal(amount) if amount else None,
        margin=Decimal(margin) if margin else None, currency=currency if amount else None,
        visitor_key=visitor_key, call_ref=call_ref, browser_visitor_id=bv, call_id=call_id,
        source="api", dedupe_key=f"test:{cid}", created_at=at, path_id=path))
    return cid
