"""Website Visitor listings on SQLite and PostgreSQL: saved views, filters, order, paging."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import Engine

from leadbridge.errors import InputError, NotFound
from leadbridge.views import (
    HitFilter,
    WebsiteVisitorFilter,
    get_website_visitor,
    list_hits,
    list_website_visitors,
    survivor_token,
    website_visitor_by_token,
    with_view,
)
from visitor_seed import NOW, HitSeed, add_hits, add_org, context, seed_world


@pytest.fixture
def world(engine: Engine) -> dict[str, int]:
    with engine.begin() as conn:
        return seed_world(conn)


def names(engine: Engine, filters: WebsiteVisitorFilter | None = None, **paging: int) -> list[str]:
    with engine.connect() as conn:
        return [v.name for v in list_website_visitors(conn, context(), filters, **paging).items]


def test_without_filters_lists_only_website_visitors_hottest_first(
    engine: Engine, world: dict[str, int]
) -> None:
    assert names(engine) == ["Old Corp", "Acme", "Umbrella", "Globex", "Initech"]


def test_last_6_months_view_drops_older_visits_and_orders_by_score(
    engine: Engine, world: dict[str, int]
) -> None:
    view = with_view(WebsiteVisitorFilter(), "last-6-months-by-score")
    assert names(engine, view) == ["Acme", "Umbrella", "Globex", "Initech"]


def test_active_leads_view_needs_a_warm_score_and_a_visit_within_30_days(
    engine: Engine, world: dict[str, int]
) -> None:
    view = with_view(WebsiteVisitorFilter(), "active-leads")
    assert names(engine, view) == ["Acme", "Globex"]


def test_unknown_view_names_the_valid_ones() -> None:
    with pytest.raises(InputError, match="last-6-months-by-score, active-leads"):
        with_view(WebsiteVisitorFilter(), "hot-stuff")


def test_explicit_sort_wins_over_the_views_order(engine: Engine, world: dict[str, int]) -> None:
    view = with_view(WebsiteVisitorFilter(sort="name"), "active-leads")
    assert names(engine, view) == ["Acme", "Globex"]
    view = with_view(WebsiteVisitorFilter(sort="last_visit"), "last-6-months-by-score")
    assert names(engine, view) == ["Acme", "Initech", "Globex", "Umbrella"]


@pytest.mark.parametrize(("filters", "expected"), [
    (WebsiteVisitorFilter(min_score=50), ["Old Corp", "Acme", "Umbrella"]),
    (WebsiteVisitorFilter(min_score=80), ["Old Corp", "Acme"]),
    (WebsiteVisitorFilter(category="pricing"), ["Acme"]),  # Initech's pricing hit is a bot's
    (WebsiteVisitorFilter(category="docs"), ["Globex"]),
    (WebsiteVisitorFilter(category="careers"), []),
    (WebsiteVisitorFilter(type="education"), ["Initech"]),
    (WebsiteVisitorFilter(type="government"), ["Umbrella"]),
    (WebsiteVisitorFilter(owner="alice"), ["Acme"]),
    (WebsiteVisitorFilter(associated=True), ["Acme"]),
    (WebsiteVisitorFilter(associated=False), ["Old Corp", "Umbrella", "Globex", "Initech"]),
    (WebsiteVisitorFilter(q="ACME"), ["Acme"]),
    (WebsiteVisitorFilter(q="globex.co"), ["Globex"]),
    (WebsiteVisitorFilter(q="%"), []),
    (WebsiteVisitorFilter(q="tele"), []),  # the ISP never shows, even searched for
    (WebsiteVisitorFilter(sort="name"), ["Acme", "Globex", "Initech", "Old Corp", "Umbrella"]),
])
def test_filters_include_and_exclude_the_right_visitors(
    engine: Engine, world: dict[str, int], filters: WebsiteVisitorFilter, expected: list[str]
) -> None:
    assert names(engine, filters) == expected


def test_visit_date_range_is_inclusive_of_both_days(engine: Engine, world: dict[str, int]) -> None:
    day = (NOW - timedelta(days=20)).date()
    assert names(engine, WebsiteVisitorFilter(visited_from=day, visited_to=day)) == ["Globex"]
    assert names(engine, WebsiteVisitorFilter(visited_from=NOW.date() - timedelta(days=5))) == [
        "Acme", "Initech"]
    assert names(engine, WebsiteVisitorFilter(visited_to=date(2024, 11, 14))) == ["Old Corp"]
    assert names(engine, WebsiteVisitorFilter(visited_to=date(2024, 11, 13))) == []


def test_type_that_is_never_a_website_visitor_is_refused() -> None:
    from leadbridge.views.website_visitors import _conditions

    with pytest.raises(InputError, match="'isp' is not a website visitor type"):
        _conditions(WebsiteVisitorFilter(type="isp"), context())


def test_paging_gives_the_total_and_the_right_slice(engine: Engine, world: dict[str, int]) -> None:
    with engine.connect() as conn:
        first = list_website_visitors(conn, context(), page=1, per_page=2)
        last = list_website_visitors(conn, context(), page=3, per_page=2)
        beyond = list_website_visitors(conn, context(), page=9, per_page=2)
    assert first.total == last.total == beyond.total == 5
    assert [v.name for v in first.items] == ["Old Corp", "Acme"]
    assert [v.name for v in last.items] == ["Initech"]
    assert beyond.items == []
    with engine.connect() as conn, pytest.raises(InputError, match="per_page=201"):
        list_website_visitors(conn, context(), per_page=201)


def test_a_visitor_carries_its_decayed_score_band_and_permalink(
    engine: Engine, world: dict[str, int]
) -> None:
    with engine.connect() as conn:
        acme = get_website_visitor(conn, context(), world["acme"])
        later = get_website_visitor(conn, context(NOW + timedelta(days=30)), world["acme"])
    assert (acme.score, acme.band) == (80.0, "hot")
    assert (later.score, later.band) == (40.0, "warm")  # one half-life later
    assert acme.domain == "acme.com" and acme.owner == "Alice" and acme.crm_account_id == "A-1"
    assert acme.permalink.startswith("https://hub.example/p/")
    assert acme.last_visit_at == NOW - timedelta(days=2)


@pytest.mark.parametrize("kind", ["telekom", "blocked", "merged"])
def test_organisations_that_are_not_website_visitors_are_not_found(
    engine: Engine, world: dict[str, int], kind: str
) -> None:
    with engine.connect() as conn, pytest.raises(NotFound):
        get_website_visitor(conn, context(), world[kind])


def test_permalink_token_finds_the_visitor_and_a_merged_token_its_survivor(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        acme, acme_token = add_org(conn, "Acme", score=5)
        _, old_token = add_org(conn, "Acme GmbH", merged_into_id=acme)
        _, isp_token = add_org(conn, "Telekom", type="isp")
    with engine.connect() as conn:
        found = website_visitor_by_token(conn, context(), acme_token)
        assert found is not None and found.name == "Acme"
        assert website_visitor_by_token(conn, context(), old_token) is None
        assert survivor_token(conn, old_token) == acme_token
        assert website_visitor_by_token(conn, context(), isp_token) is None
        assert survivor_token(conn, isp_token) is None
        assert survivor_token(conn, "no-such-token") is None


def test_hits_name_their_website_visitor_but_not_an_isp(
    engine: Engine, world: dict[str, int]
) -> None:
    with engine.connect() as conn:
        page = list_hits(conn, HitFilter(url="/pricing"))
    by_org = {h.website_visitor_name for h in page.items}
    assert page.total == 3  # the bot's hit is left out
    assert by_org == {"Acme", None}  # Telekom (ISP) and Blocked Inc carry no visitor


@pytest.mark.parametrize(("filters", "expected"), [
    (HitFilter(), 4),
    (HitFilter(include_bots=True), 5),
    (HitFilter(url="PRICING"), 3),
    (HitFilter(url="*/docs/*"), 1),
    (HitFilter(url="*/docs"), 0),  # a glob matches the whole URL
    (HitFilter(url="https://www.example.com/pric*"), 3),
    (HitFilter(category="docs"), 1),
    (HitFilter(min_score=5), 3),
    (HitFilter(occurred_from=(NOW - timedelta(days=3)).date()), 3),
    (HitFilter(occurred_to=(NOW - timedelta(days=20)).date()), 1),
    (HitFilter(occurred_to=NOW - timedelta(days=21)), 0),
])
def test_hit_filters(
    engine: Engine, world: dict[str, int], filters: HitFilter, expected: int
) -> None:
    with engine.connect() as conn:
        assert list_hits(conn, filters).total == expected


def test_hits_of_one_website_visitor_newest_first(engine: Engine, world: dict[str, int]) -> None:
    with engine.begin() as conn:
        add_hits(conn, [HitSeed("https://www.example.com/", world["acme"], minutes_ago=5),
                        HitSeed("https://www.example.com/a_b", world["acme"], minutes_ago=1)])
    with engine.connect() as conn:
        found = list_hits(conn, HitFilter(website_visitor_id=world["acme"])).items
        assert [h.url for h in found] == ["https://www.example.com/a_b",
                                          "https://www.example.com/",
                                          "https://www.example.com/pricing"]
        assert list_hits(conn, HitFilter(url="a_b")).total == 1
        assert list_hits(conn, HitFilter(url="a_*")).total == 0
        assert list_hits(conn, HitFilter(website_visitor_id=world["telekom"])).total == 0


def test_public_names_and_api_types_stay_in_step() -> None:
    from typing import get_args

    import leadbridge.views as views
    from leadbridge.api.routes.organisations import OrganisationType
    from leadbridge.api.routes.website_visitors import WebsiteVisitorType
    from leadbridge.identify.classify import ORGANISATION_TYPES
    from leadbridge.identify.organisations import WEBSITE_VISITOR_TYPES

    assert all(hasattr(views, name) for name in views.__all__)
    assert set(get_args(WebsiteVisitorType)) == set(WEBSITE_VISITOR_TYPES)
    assert set(get_args(OrganisationType)) == set(ORGANISATION_TYPES)
