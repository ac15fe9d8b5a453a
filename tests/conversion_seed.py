"""Browser visitors and calls for conversion-intake tests, written straight into the tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text

from leadbridge.store.tables import browser_visitors, calls, contacts, conversions, sites

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
VISITOR = "0123456789abcdef"  # seen on the shop, identified as a contact
OTHER = "fedcba9876543210"  # anonymous, seen on the shop
CALL = "CALL-1001"  # came from VISITOR's web session
PHONE_ONLY_CALL = "CALL-2002"  # no web session
ALL_TABLES = ("conversions", "conversion_imports", "conversion_rejections", "calls")


def add_site(conn: Connection, name: str = "Shop") -> int:
    return int(conn.execute(insert(sites).values(
        name=name, hosts=["www.example.com"], created_at=NOW).returning(sites.c.id)).scalar_one())


def add_visitor(conn: Connection, site_id: int, key: str, *, contact_id: int | None = None,
                seen: datetime = NOW) -> int:
    return int(conn.execute(insert(browser_visitors).values(
        site_id=site_id, visitor_key=key, contact_id=contact_id, first_seen_at=seen,
        last_seen_at=seen).returning(browser_visitors.c.id)).scalar_one())


def add_call(conn: Connection, ref: str, *, browser_visitor_id: int | None = None,
             marketing_source_id: int | None = None) -> int:
    return int(conn.execute(insert(calls).values(
        call_ref=ref, tracking_number="+442071838750", caller_number="+447700900123",
        started_at=NOW - timedelta(hours=1), duration_s=120,
        browser_visitor_id=browser_visitor_id, marketing_source_id=marketing_source_id,
        created_at=NOW).returning(calls.c.id)).scalar_one())


def seed(engine: Engine) -> dict[str, Any]:
    """A site, two browser visitors (one a contact), a call from the web and a phone-only call."""
    with engine.begin() as conn:
        site_id = add_site(conn)
        contact_id = int(conn.execute(insert(contacts).values(
            email="ann@example.com", created_at=NOW, hit_count=0, score_weight=0.0)
            .returning(contacts.c.id)).scalar_one())
        visitor = add_visitor(conn, site_id, VISITOR, contact_id=contact_id)
        other = add_visitor(conn, site_id, OTHER)
        call = add_call(conn, CALL, browser_visitor_id=visitor)
        phone_call = add_call(conn, PHONE_ONLY_CALL)
    return {"site": site_id, "contact": contact_id, "visitor": visitor, "other": other,
            "call": call, "phone_call": phone_call}


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
                for t in ALL_TABLES}


def stored(engine: Engine, order_by: str = "occurred_at") -> list[Any]:
    """Every stored conversion, typed (times UTC-aware, amounts Decimal)."""
    with engine.connect() as conn:
        return list(conn.execute(select(conversions).order_by(conversions.c[order_by],
                                                              conversions.c.id)))


