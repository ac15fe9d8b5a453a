"""The Website Visitor permalink page `/p/{token}`: no key needed, nothing leaked or injected."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from leadbridge.hub import Hub
from support import scalar
from visitor_seed import HitSeed, add_hits, add_org, seed_world


@pytest.fixture
def world(hub: Hub, client: TestClient) -> dict[str, int]:
    with hub.engine.begin() as conn:
        return seed_world(conn, now=datetime.now(UTC), decay=hub.decay)


def token_of(hub: Hub, org_id: int) -> str:
    return str(scalar(hub.engine, "SELECT permalink_token FROM organisations WHERE id = :i",
                      i=org_id))


def assert_private(headers: object) -> None:
    assert "noindex" in headers["x-robots-tag"]  # type: ignore[index]
    assert headers["referrer-policy"] == "no-referrer"  # type: ignore[index]


def test_page_shows_the_company_its_score_and_hits_without_a_key(
    client: TestClient, hub: Hub, world: dict[str, int]
) -> None:
    now = datetime.now(UTC)
    with hub.engine.begin() as conn:
        add_hits(conn, [HitSeed("https://www.example.com/pricing/enterprise", world["acme"],
                                "pricing", 10, 30, page_name="Enterprise pricing",
                                time_on_page=125)], now=now)
    r = client.get(f"/p/{token_of(hub, world['acme'])}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert_private(r.headers)
    page = r.text
    assert "<h1>Acme</h1>" in page and "acme.com" in page
    assert "80.00" in page and ">hot<" in page
    assert "Alice" in page and "A-1" in page
    assert "Enterprise pricing" in page and "2 min 05 s" in page
    assert page.index("Enterprise pricing") < page.index("https://www.example.com/pricing<")
    assert page.count("<tr>") == 3  # header + two hits


def test_permalink_from_the_api_opens_the_page(
    client: TestClient, hub: Hub, auth: dict[str, str], world: dict[str, int]
) -> None:
    visitor = client.get(f"/api/v1/website-visitors/{world['globex']}", headers=auth).json()
    r = client.get(urlsplit(visitor["permalink"]).path)
    assert r.status_code == 200 and "<h1>Globex</h1>" in r.text and "docs" in r.text


@pytest.mark.parametrize("token", ["x" * 32, "short", "not a token!" * 3, "a" * 200])
def test_unknown_token_is_a_404_page(client: TestClient, token: str) -> None:
    r = client.get(f"/p/{token}")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "does not exist" in r.text
    assert_private(r.headers)


@pytest.mark.parametrize("kind", ["telekom", "blocked"])
def test_isps_and_blocked_organisations_have_no_page(
    client: TestClient, hub: Hub, world: dict[str, int], kind: str
) -> None:
    r = client.get(f"/p/{token_of(hub, world[kind])}")
    assert r.status_code == 404 and "Telekom" not in r.text and "Blocked" not in r.text


def test_a_merged_organisations_link_leads_to_the_survivor(
    client: TestClient, hub: Hub, world: dict[str, int]
) -> None:
    r = client.get(f"/p/{token_of(hub, world['merged'])}", follow_redirects=False)
    assert r.status_code == 308
    assert r.headers["location"] == f"/p/{token_of(hub, world['acme'])}"
    assert "<h1>Acme</h1>" in client.get(f"/p/{token_of(hub, world['merged'])}").text


def test_names_and_pages_are_html_escaped(client: TestClient, hub: Hub) -> None:
    with hub.engine.begin() as conn:
        org_id, token = add_org(conn, "<script>alert('x')</script> & Co", score=5,
                                now=datetime.now(UTC), decay=hub.decay,
                                industry='"><img src=x onerror=alert(1)>')
        add_hits(conn, [HitSeed("https://www.example.com/?q=<b>", org_id,
                                page_name="<i>Home</i>")], now=datetime.now(UTC))
    page = client.get(f"/p/{token}").text
    assert "<script>" not in page and "<img" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co" in page
    assert "&lt;i&gt;Home&lt;/i&gt;" in page and "?q=&lt;b&gt;" in page


def test_page_is_not_in_the_api_schema(client: TestClient) -> None:
    assert not any(p.startswith("/p/") for p in client.get("/openapi.json").json()["paths"])
