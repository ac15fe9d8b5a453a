"""Contacts (uid, email-link tokens, forms), the native JSON API and the email pixel."""

from __future__ import annotations

from starlette.testclient import TestClient

from leadbridge.hub import Hub
from leadbridge.identify.contacts import make_contact_token
from support import BROWSER_UA, rows, scalar, track

VID = "1234567890abcdef"


def test_uid_identifies_the_browser_and_claims_its_earlier_hits(client: TestClient, site_id: int,
                                                                 hub: Hub) -> None:
    track(client, site_id, "https://www.example.com/a", _id=VID)
    track(client, site_id, "https://www.example.com/b", _id=VID)
    assert scalar(hub.engine, "SELECT count(*) FROM contacts") == 0
    track(client, site_id, "https://www.example.com/c", _id=VID, uid="Jane@Example.com")
    [contact] = rows(hub.engine, "SELECT * FROM contacts")
    assert contact.email == "jane@example.com" and contact.hit_count == 3
    assert scalar(hub.engine, "SELECT count(*) FROM hits WHERE contact_id = :c",
                  c=contact.id) == 3
    # later anonymous hits of the same browser stay the contact's
    track(client, site_id, "https://www.example.com/d", _id=VID)
    assert scalar(hub.engine, "SELECT count(*) FROM hits WHERE contact_id = :c",
                  c=contact.id) == 4
    assert scalar(hub.engine, "SELECT hit_count FROM contacts") == 4


def test_uid_that_is_not_an_email_is_a_crm_id(client: TestClient, site_id: int, hub: Hub) -> None:
    track(client, site_id, "https://www.example.com/", _id=VID, uid="CRM-00042")
    [c] = rows(hub.engine, "SELECT email, external_id FROM contacts")
    assert c.email is None and c.external_id == "CRM-00042"


def test_email_link_token_identifies_and_a_forged_one_is_refused(client: TestClient,
                                                                 site_id: int, hub: Hub) -> None:
    token = make_contact_token(hub.secret, "bob@acme.example")
    r = track(client, site_id, f"https://www.example.com/offer?lb_ct={token}", _id=VID)
    assert r.status_code == 200
    assert scalar(hub.engine, "SELECT email FROM contacts") == "bob@acme.example"
    forged = make_contact_token("another-secret", "eve@acme.example")
    r = track(client, site_id, f"https://www.example.com/offer?lb_ct={forged}", _id=VID)
    assert r.status_code == 400 and "lb_ct" in r.json()["detail"]
    assert scalar(hub.engine, "SELECT count(*) FROM contacts") == 1


def test_native_api_single_hit_and_form_identification(client: TestClient, site_id: int,
                                                       hub: Hub) -> None:
    r = client.post("/api/v1/hits", json={"site_id": site_id, "url": "https://www.example.com/x",
                                          "title": "X", "visitor_id": VID},
                    headers={"User-Agent": BROWSER_UA})
    assert r.status_code == 201 and r.json()["status"] == "stored"
    r = client.post("/api/v1/hits", json={"site_id": site_id, "kind": "form",
                                          "url": "https://www.example.com/contact",
                                          "visitor_id": VID, "email": "ann@initech.example",
                                          "name": "Ann"})
    assert r.status_code == 201
    [c] = rows(hub.engine, "SELECT email, name, hit_count FROM contacts")
    assert (c.email, c.name, c.hit_count) == ("ann@initech.example", "Ann", 2)
    assert scalar(hub.engine, "SELECT event_category FROM hits WHERE kind = 'form'") == "form"


def test_native_api_list_keeps_good_hits_and_names_what_is_wrong(client: TestClient,
                                                                  site_id: int, hub: Hub) -> None:
    r = client.post("/api/v1/hits", json={"hits": [
        {"site_id": site_id, "url": "https://www.example.com/1"},
        {"site_id": site_id, "url": "not a url"},
        {"site_id": site_id, "url": "https://www.example.com/2", "colour": "red"},
        {"site_id": 777, "url": "https://www.example.com/3"},
        {"site_id": site_id, "url": "https://www.example.com/4", "ip": "203.0.113.5"},
        {"site_id": site_id, "url": "https://www.example.com/5", "kind": "event"},
        {"site_id": site_id, "url": "https://www.example.com/6",
         "occurred_at": "2026-13-45T00:00:00"},
        {"site_id": site_id, "url": "https://www.example.com/7",
         "event": {"category": "download", "action": "pdf"}, "kind": "event"},
    ]})
    assert r.status_code == 200
    doc = r.json()
    assert doc["stored"] == 2 and doc["rejected"] == 6
    res = doc["results"]
    assert res[1]["error"] == "invalid" and "url" in res[1]["detail"]
    assert "colour" in res[2]["detail"]
    assert res[3]["error"] == "unknown_site"
    assert "API key" in res[4]["detail"]
    assert "event" in res[5]["detail"]
    assert "occurred_at" in res[6]["detail"]
    assert sorted(u.url[-1] for u in rows(hub.engine, "SELECT url FROM hits")) == ["1", "7"]


def test_native_api_with_key_may_set_ip_and_time(client: TestClient, site_id: int, hub: Hub,
                                                 auth: dict[str, str]) -> None:
    r = client.post("/api/v1/hits", headers=auth, json={
        "site_id": site_id, "url": "https://www.example.com/", "ip": "203.0.113.77",
        "occurred_at": "2026-01-02T03:04:05+01:00"})
    assert r.status_code == 201, r.json()
    [h] = rows(hub.engine, "SELECT h.occurred_at, o.name FROM hits h "
                           "JOIN organisations o ON o.id = h.organisation_id")
    assert h.name == "Acme Corp" and str(h.occurred_at).startswith("2026-01-02 02:04:05")


def test_native_api_rejects_non_json_and_wrong_shapes(client: TestClient, site_id: int) -> None:
    assert client.post("/api/v1/hits", content=b"{oops").json()["error"] == "invalid"
    assert client.post("/api/v1/hits", json="hello").status_code == 400
    many = [{"site_id": site_id, "url": "https://www.example.com/"}] * 1001
    assert client.post("/api/v1/hits", json=many).status_code == 413


def test_email_pixel_records_an_open_for_the_contact(client: TestClient, site_id: int,
                                                     hub: Hub) -> None:
    token = make_contact_token(hub.secret, "carol@globex.example")
    r = client.get("/pixel.gif", params={"idsite": site_id, "lb_ct": token, "c": "november"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
    [h] = rows(hub.engine, "SELECT kind, campaign_name, contact_id FROM hits")
    assert h.kind == "email_open" and h.campaign_name == "november" and h.contact_id is not None
    assert client.get("/pixel.gif", params={"idsite": site_id}).status_code == 400
    assert client.get("/pixel.gif", params={"idsite": 4242, "lb_ct": token}).status_code == 400


def test_a_contact_belongs_to_the_website_visitor_it_was_last_seen_from(
        client: TestClient, site_id: int, hub: Hub, api_key: str) -> None:
    track(client, site_id, "https://www.example.com/a", _id=VID, uid="jane@example.com")
    [jane] = rows(hub.engine, "SELECT c.organisation_id, o.name FROM contacts c "
                              "JOIN organisations o ON o.id = c.organisation_id")
    assert jane.name == "Testclient Industries"  # the company behind the client's address
    # seen from home (an ISP) later: she stays the company's
    track(client, site_id, "https://www.example.com/b", _id=VID, cip="203.0.113.200",
          token_auth=api_key)
    assert scalar(hub.engine, "SELECT organisation_id FROM contacts") == jane.organisation_id
    # seen from another company: she follows it
    track(client, site_id, "https://www.example.com/c", _id=VID, cip="203.0.113.10",
          token_auth=api_key)
    assert scalar(hub.engine, "SELECT o.name FROM contacts c JOIN organisations o "
                              "ON o.id = c.organisation_id") == "Acme Corp"
