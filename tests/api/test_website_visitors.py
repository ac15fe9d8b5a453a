"""`/api/v1/website-visitors` through the whole app, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from leadbridge.hub import Hub
from support import track
from visitor_seed import seed_world

URL = "/api/v1/website-visitors"


@pytest.fixture
def world(hub: Hub, client: TestClient) -> dict[str, int]:
    with hub.engine.begin() as conn:
        return seed_world(conn, now=datetime.now(UTC), decay=hub.decay)


def listed(client: TestClient, auth: dict[str, str], **params: Any) -> list[str]:
    r = client.get(URL, params=params, headers=auth)
    assert r.status_code == 200, r.text
    return [v["name"] for v in r.json()["items"]]


def test_tracked_visits_make_a_website_visitor_and_an_isp_stays_out(
    client: TestClient, site_id: int, auth: dict[str, str], api_key: str
) -> None:
    track(client, site_id, "https://www.example.com/pricing", action_name="Pricing")
    track(client, site_id, "https://www.example.com/", cip="203.0.113.200", token_auth=api_key)
    track(client, site_id, "https://www.example.com/about", cip="203.0.113.5",
          token_auth=api_key)
    body = client.get(URL, headers=auth).json()
    assert body["total"] == 2
    assert {v["name"] for v in body["items"]} == {"Testclient Industries", "Acme Corp"}
    org = next(v for v in body["items"] if v["name"] == "Testclient Industries")
    assert org["domain"] == "testclient.example" and org["type"] == "company"
    assert org["hit_count"] == 1 and org["score"] > 0 and org["band"] == "cold"
    assert org["permalink"].startswith("http://127.0.0.1:8000/p/")
    detail = client.get(f"{URL}/{org['id']}", headers=auth).json()
    assert [h["url"] for h in detail["hits"]] == ["https://www.example.com/pricing"]
    assert detail["hits"][0]["page_name"] == "Pricing"
    assert detail["hits"][0]["website_visitor_name"] == "Testclient Industries"


def test_saved_views(client: TestClient, auth: dict[str, str], world: dict[str, int]) -> None:
    assert listed(client, auth, view="last-6-months-by-score") == [
        "Acme", "Umbrella", "Globex", "Initech"]
    assert listed(client, auth, view="active-leads") == ["Acme", "Globex"]
    assert listed(client, auth, view="active-leads", sort="name", q="glob") == ["Globex"]
    body = client.get(URL, params={"view": "active-leads"}, headers=auth).json()
    assert body["view"] == "active-leads" and body["total"] == 2


def test_unknown_view_is_a_400_naming_the_saved_views(
    client: TestClient, auth: dict[str, str], world: dict[str, int]
) -> None:
    r = client.get(URL, params={"view": "hottest"}, headers=auth)
    assert r.status_code == 400
    assert "'hottest'" in r.json()["detail"]
    assert "last-6-months-by-score" in r.json()["detail"]
    assert "active-leads" in r.json()["detail"]


@pytest.mark.parametrize(("params", "expected"), [
    ({"min_score": 50}, ["Old Corp", "Acme", "Umbrella"]),
    ({"category": "pricing"}, ["Acme"]),
    ({"type": "education"}, ["Initech"]),
    ({"owner": "ALICE"}, ["Acme"]),
    ({"associated": "true"}, ["Acme"]),
    ({"associated": "false", "min_score": 20}, ["Old Corp", "Umbrella", "Globex"]),
    ({"q": "umb"}, ["Umbrella"]),
    ({"q": "telekom"}, []),
    ({"sort": "last_visit"}, ["Acme", "Initech", "Globex", "Umbrella", "Old Corp"]),
    ({"sort": "name", "per_page": 2, "page": 2}, ["Initech", "Old Corp"]),
])
def test_filters(
    client: TestClient, auth: dict[str, str], world: dict[str, int],
    params: dict[str, Any], expected: list[str],
) -> None:
    assert listed(client, auth, **params) == expected


def test_visit_dates_filter_the_last_visit(
    client: TestClient, auth: dict[str, str], world: dict[str, int]
) -> None:
    today = datetime.now(UTC).date()
    assert listed(client, auth, visited_from=str(today - timedelta(days=6))) == [
        "Acme", "Initech"]
    assert listed(client, auth, visited_from=str(today - timedelta(days=150)),
                  visited_to=str(today - timedelta(days=10))) == ["Umbrella", "Globex"]


def test_paging_totals(client: TestClient, auth: dict[str, str], world: dict[str, int]) -> None:
    pages = [client.get(URL, params={"per_page": 2, "page": p}, headers=auth).json()
             for p in (1, 2, 3, 4)]
    assert [p["total"] for p in pages] == [5, 5, 5, 5]
    assert [len(p["items"]) for p in pages] == [2, 2, 1, 0]
    assert len({v["id"] for p in pages for v in p["items"]}) == 5


def test_detail_has_recent_hits_limited_and_isps_are_not_found(
    client: TestClient, auth: dict[str, str], world: dict[str, int], site_id: int
) -> None:
    r = client.get(f"{URL}/{world['acme']}", headers=auth)
    assert r.status_code == 200
    acme = r.json()
    assert acme["name"] == "Acme" and acme["band"] == "hot" and acme["crm_account_id"] == "A-1"
    assert [h["category"] for h in acme["hits"]] == ["pricing"]
    assert acme["hits"][0]["score"] == 10
    none = client.get(f"{URL}/{world['acme']}", params={"hits_limit": 0}, headers=auth).json()
    assert none["hits"] == []
    for kind in ("telekom", "blocked", "merged"):
        missing = client.get(f"{URL}/{world[kind]}", headers=auth)
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert client.get(f"{URL}/999999", headers=auth).status_code == 404


def test_a_key_is_required(client: TestClient, world: dict[str, int]) -> None:
    for path in (URL, f"{URL}/{world['acme']}"):
        assert client.get(path).status_code == 401
        wrong = client.get(path, headers={"Authorization": "Bearer lb_not-a-real-key"})
        assert wrong.status_code == 401


@pytest.mark.parametrize(("params", "named"), [
    ({"page": -1}, "page"),
    ({"page": 0}, "page"),
    ({"per_page": 10000}, "per_page"),
    ({"per_page": "ten"}, "per_page"),
    ({"visited_from": "2024-02-30"}, "visited_from"),
    ({"visited_to": "yesterday"}, "visited_to"),
    ({"min_score": -1}, "min_score"),
    ({"type": "isp"}, "type"),
    ({"sort": "random"}, "sort"),
    ({"associated": "maybe"}, "associated"),
    ({"min_scor": 5}, "min_scor"),
    ({"visited_from": "2025-02-02", "visited_to": "2025-02-01"}, "visited_from"),
])
def test_malformed_parameters_are_a_422_naming_them(
    client: TestClient, auth: dict[str, str], params: dict[str, Any], named: str
) -> None:
    r = client.get(URL, params=params, headers=auth)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid" and named in r.json()["detail"]


def test_hits_limit_is_validated(client: TestClient, auth: dict[str, str],
                                 world: dict[str, int]) -> None:
    r = client.get(f"{URL}/{world['acme']}", params={"hits_limit": 501}, headers=auth)
    assert r.status_code == 422 and "hits_limit" in r.json()["detail"]
