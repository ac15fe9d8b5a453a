"""`/api/v1/hits`, `/api/v1/contacts`, contact tokens and form identification, on both
databases, through the whole app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from leadbridge.hub import Hub
from support import BOT_UA, BROWSER_UA, scalar, track
from visitor_seed import HitSeed, add_contact, add_hits, seed_world

VID = "00112233aabbccdd"


@pytest.fixture
def world(hub: Hub, client: TestClient) -> dict[str, int]:
    with hub.engine.begin() as conn:
        return seed_world(conn, now=datetime.now(UTC), decay=hub.decay)


def hits(client: TestClient, auth: dict[str, str], **params: Any) -> dict[str, Any]:
    r = client.get("/api/v1/hits", params=params, headers=auth)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_get_lists_hits_while_post_still_tracks_on_the_same_path(
    client: TestClient, site_id: int, auth: dict[str, str]
) -> None:
    r = client.post("/api/v1/hits", headers={"User-Agent": BROWSER_UA}, json={
        "site_id": site_id, "url": "https://www.example.com/offer", "title": "Offer",
        "visitor_id": VID, "campaign": {"name": "spring", "source": "news", "medium": "email"},
    })
    assert r.status_code == 201, r.text  # tracking needs no key
    body = hits(client, auth)
    assert body["total"] == 1
    [hit] = body["items"]
    assert hit["url"] == "https://www.example.com/offer" and hit["page_name"] == "Offer"
    assert hit["campaign"] == {"name": "spring", "source": "news", "medium": "email",
                               "keyword": None, "content": None}
    assert hit["channel"] == "email" and hit["event"] is None and hit["kind"] == "pageview"
    assert hit["website_visitor_name"] == "Testclient Industries"
    assert hit["browser"] == "Chrome" and hit["is_bot"] is False
    assert client.get("/api/v1/hits").status_code == 401
    paths = client.get("/openapi.json").json()["paths"]
    assert "get" in paths["/api/v1/hits"]


def test_bots_are_left_out_unless_asked_for(
    client: TestClient, site_id: int, auth: dict[str, str]
) -> None:
    track(client, site_id, "https://www.example.com/a")
    track(client, site_id, "https://www.example.com/a", ua=BOT_UA)
    assert hits(client, auth)["total"] == 1
    everything = hits(client, auth, include_bots="true")
    assert everything["total"] == 2 and {h["is_bot"] for h in everything["items"]} == {
        True, False}


@pytest.mark.parametrize(("params", "expected"), [
    ({}, 4),
    ({"url": "pricing"}, 3),
    ({"url": "*/docs/*"}, 1),
    ({"category": "docs"}, 1),
    ({"min_score": 5}, 3),
    ({"include_bots": "true", "min_score": 5}, 4),
    ({"per_page": 1, "page": 3}, 4),
])
def test_hit_filters(
    client: TestClient, auth: dict[str, str], world: dict[str, int],
    params: dict[str, Any], expected: int,
) -> None:
    assert hits(client, auth, **params)["total"] == expected


def test_hits_of_one_visitor_site_and_time_window(
    client: TestClient, auth: dict[str, str], world: dict[str, int]
) -> None:
    acme = hits(client, auth, website_visitor_id=world["acme"])["items"]
    assert [(h["website_visitor_name"], h["category"]) for h in acme] == [("Acme", "pricing")]
    assert hits(client, auth, website_visitor_id=world["telekom"])["total"] == 0
    assert hits(client, auth, site_id=1)["total"] == 4
    assert hits(client, auth, site_id=2)["total"] == 0
    today = datetime.now(UTC).date()
    assert hits(client, auth, occurred_from=str(today - timedelta(days=3)))["total"] == 3
    recent = (datetime.now(UTC) - timedelta(days=19)).isoformat()
    assert hits(client, auth, occurred_to=recent)["total"] == 1  # Globex's, 20 days ago


@pytest.mark.parametrize(("params", "named"), [
    ({"page": -1}, "page"),
    ({"per_page": 10000}, "per_page"),
    ({"occurred_from": "2024-13-01"}, "occurred_from"),
    ({"occurred_to": "soon"}, "occurred_to"),
    ({"website_visitor_id": "acme"}, "website_visitor_id"),
    ({"include_bots": "perhaps"}, "include_bots"),
    ({"colour": "red"}, "colour"),
])
def test_malformed_hit_parameters_are_a_422_naming_them(
    client: TestClient, auth: dict[str, str], params: dict[str, Any], named: str
) -> None:
    r = client.get("/api/v1/hits", params=params, headers=auth)
    assert r.status_code == 422 and named in r.json()["detail"], r.text


def test_contacts_list_filters_and_detail_with_hits(
    client: TestClient, site_id: int, auth: dict[str, str], hub: Hub
) -> None:
    track(client, site_id, "https://www.example.com/a", _id=VID, uid="Jane@Example.com")
    track(client, site_id, "https://www.example.com/b", _id=VID)
    with hub.engine.begin() as conn:
        add_contact(conn, "hot@globex.example", score=70, now=datetime.now(UTC),
                    name="Hank Scorpio")
    listing = client.get("/api/v1/contacts", headers=auth).json()
    assert [c["email"] for c in listing["items"]] == ["hot@globex.example", "jane@example.com"]
    assert listing["items"][0]["band"] == "hot"
    jane = listing["items"][1]
    assert jane["hit_count"] == 2 and jane["score"] == 2.0 and jane["band"] == "cold"
    found = client.get("/api/v1/contacts", params={"q": "SCORPIO"}, headers=auth).json()
    assert [c["email"] for c in found["items"]] == ["hot@globex.example"]
    warm = client.get("/api/v1/contacts", params={"min_score": 10}, headers=auth).json()
    assert warm["total"] == 1
    detail = client.get(f"/api/v1/contacts/{jane['id']}", headers=auth).json()
    assert [h["url"] for h in detail["hits"]] == ["https://www.example.com/b",
                                                  "https://www.example.com/a"]
    assert {h["contact_email"] for h in detail["hits"]} == {"jane@example.com"}
    assert client.get("/api/v1/contacts/99999", headers=auth).status_code == 404
    assert client.get("/api/v1/contacts").status_code == 401
    assert client.get("/api/v1/contacts", params={"per_page": 0}, headers=auth).status_code == 422


def test_contact_tokens_identify_the_reader_and_bad_addresses_are_reported(
    client: TestClient, site_id: int, auth: dict[str, str], hub: Hub
) -> None:
    r = client.post("/api/v1/contacts/tokens", headers=auth,
                    json={"emails": ["Bob@Acme.example", "not-an-email"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [t["email"] for t in body["tokens"]] == ["bob@acme.example"]
    assert body["errors"][0]["email"] == "not-an-email"
    assert "not an email address" in body["errors"][0]["detail"]
    token = body["tokens"][0]["token"]
    track(client, site_id, f"https://www.example.com/offer?lb_ct={token}", _id=VID)
    assert scalar(hub.engine, "SELECT email FROM contacts") == "bob@acme.example"
    assert client.post("/api/v1/contacts/tokens", json={"emails": ["a@b.example"]}
                       ).status_code == 401
    empty = client.post("/api/v1/contacts/tokens", headers=auth, json={"emails": []})
    assert empty.status_code == 422 and "emails" in empty.json()["detail"]


def test_identify_claims_earlier_hits_and_later_hits_follow(
    client: TestClient, site_id: int, auth: dict[str, str], hub: Hub
) -> None:
    track(client, site_id, "https://www.example.com/a", _id=VID)
    track(client, site_id, "https://www.example.com/b", _id=VID)
    r = client.post("/api/v1/identify", headers=auth, json={
        "site_id": site_id, "visitor_id": VID.upper(), "email": "Ann@Initech.example",
        "name": "Ann"})
    assert r.status_code == 200, r.text
    ann = r.json()
    assert (ann["email"], ann["name"], ann["hit_count"]) == ("ann@initech.example", "Ann", 2)
    track(client, site_id, "https://www.example.com/c", _id=VID)
    assert scalar(hub.engine, "SELECT count(*) FROM hits WHERE contact_id = :c",
                  c=ann["id"]) == 3
    assert scalar(hub.engine, "SELECT hit_count FROM contacts") == 3


def test_identify_before_any_hit_creates_the_browser(
    client: TestClient, site_id: int, auth: dict[str, str], hub: Hub
) -> None:
    r = client.post("/api/v1/identify", headers=auth, json={
        "site_id": site_id, "visitor_id": VID, "email": "new@initech.example"})
    assert r.status_code == 200 and r.json()["hit_count"] == 0
    track(client, site_id, "https://www.example.com/", _id=VID)
    assert scalar(hub.engine, "SELECT hit_count FROM contacts") == 1


@pytest.mark.parametrize(("body", "status", "named"), [
    ({"site_id": 999, "visitor_id": VID, "email": "a@b.example"}, 400, "999"),
    ({"site_id": "{site}", "visitor_id": "xyz", "email": "a@b.example"}, 422, "visitor_id"),
    ({"site_id": "{site}", "visitor_id": VID, "email": "nobody"}, 400, "email"),
    ({"site_id": "{site}", "visitor_id": VID}, 422, "email"),
    ({"site_id": "{site}", "visitor_id": VID, "email": "a@b.example", "x": 1}, 422, "x"),
])
def test_identify_refuses_bad_input(
    client: TestClient, site_id: int, auth: dict[str, str], hub: Hub,
    body: dict[str, Any], status: int, named: str,
) -> None:
    body = {k: site_id if v == "{site}" else v for k, v in body.items()}
    r = client.post("/api/v1/identify", headers=auth, json=body)
    assert r.status_code == status and named in r.json()["detail"], r.text
    assert scalar(hub.engine, "SELECT count(*) FROM contacts") == 0


def test_identify_needs_a_key(client: TestClient, site_id: int) -> None:
    r = client.post("/api/v1/identify", json={"site_id": site_id, "visitor_id": VID,
                                              "email": "a@b.example"})
    assert r.status_code == 401


def test_seeded_hits_carry_contact_email(
    client: TestClient, auth: dict[str, str], hub: Hub
) -> None:
    now = datetime.now(UTC)
    with hub.engine.begin() as conn:
        cid = add_contact(conn, "x@y.example", now=now)
        add_hits(conn, [HitSeed("https://www.example.com/z", contact_id=cid)], now=now)
    [hit] = hits(client, auth, contact_id=cid)["items"]
    assert hit["contact_email"] == "x@y.example" and hit["website_visitor_id"] is None
