"""Sessions rebuilt from hits: split by 30 minutes of inactivity and by a new source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import Engine

from attribution_seed import T0, H, visitor
from leadbridge.conversions.sessions import visitor_sessions
from leadbridge.tracking.channels import starts_visit, visit_source


def touches(engine: Engine, bv: int, **kw: object) -> list[tuple[float, str, str, str]]:
    with engine.connect() as conn:
        found = visitor_sessions(conn, bv, **kw)  # type: ignore[arg-type]
    return [((s.started_at - T0).total_seconds() / 60, s.channel, s.source, s.campaign)
            for s in found]


def test_thirty_quiet_minutes_start_a_new_direct_session(engine: Engine) -> None:
    with engine.begin() as conn:
        bv = visitor(conn, "a1", H(0, "direct"), H(10), H(39), H(69.5), H(80), H(110))
    # 39 -> 69.5 is 30.5 minutes apart: a new session; 80 -> 110 is exactly 30: the same one
    assert touches(engine, bv) == [(0, "direct", "(none)", "(none)"),
                                   (69.5, "direct", "(none)", "(none)")]


def test_a_new_campaign_or_referrer_starts_a_session_but_direct_and_internal_do_not(
        engine: Engine) -> None:
    with engine.begin() as conn:
        bv = visitor(
            conn, "a2",
            H(0, "organic_search", "https://www.google.com/search?q=x"),
            H(2),
            H(4, "direct"),  # typed the address mid-visit: same session
            H(5, "organic_search", "https://www.google.com/"),  # the same source again: same
            H(6, "paid_search", "https://www.google.com/", "spring", "google"),
            H(7),
            H(8, "email", None, "newsletter-12", "mailchimp"),
            H(9, "referral", "https://blog.partner.example/post"),
            H(10, "social", "https://www.linkedin.com/feed"),
        )
    assert touches(engine, bv) == [
        (0, "organic_search", "google.com", "(none)"),
        (6, "paid_search", "google", "spring"),
        (8, "email", "mailchimp", "newsletter-12"),
        (9, "referral", "blog.partner.example", "(none)"),
        (10, "social", "linkedin.com", "(none)"),
    ]


def test_bots_and_email_opens_are_not_visits(engine: Engine) -> None:
    with engine.begin() as conn:
        bv = visitor(conn, "a3", H(0, "campaign", None, "c", "s", kind="email_open"),
                     H(5, "referral", "https://spam.example/", bot=True),
                     H(60, "referral", "https://ok.example/"))
    assert touches(engine, bv) == [(60, "referral", "ok.example", "(none)")]


def test_bounds_are_inclusive_and_accept_any_time_zone(engine: Engine) -> None:
    with engine.begin() as conn:
        bv = visitor(conn, "a4", H(0, "direct"), H(60, "referral", "https://a.example/"),
                     H(120, "referral", "https://b.example/"))
    paris = timezone(timedelta(hours=1))
    since = (T0 + timedelta(minutes=60)).astimezone(paris)
    until = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    assert [t[2] for t in touches(engine, bv, since=since, until=until)] == [
        "a.example", "b.example"]
    assert [t[2] for t in touches(engine, bv, until=until - timedelta(microseconds=1))] == [
        "(none)", "a.example"]


def test_visit_source_prefers_the_campaign_source_then_the_referrer_host() -> None:
    assert visit_source("campaign", "https://www.bing.com/", "NewsLetter ") == "newsletter"
    assert visit_source("referral", "https://WWW.Partner.example/x", None) == "partner.example"
    assert visit_source("direct", None, None) == "(none)"
    assert visit_source("internal", "https://www.example.com/a", None) == "(none)"
    assert visit_source("referral", "http://[::1", None) == "(none)"
    assert starts_visit("email") and not starts_visit("internal") and not starts_visit(None)
