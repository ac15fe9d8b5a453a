"""`/api/v1/organisations` (ISPs included, corrections by people) and `/api/v1/scoring/rules`
(read, replace, re-score history), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from leadbridge.config import PageRuleConfig, Settings
from leadbridge.hub import Hub
from support import rows, scalar, track
from visitor_seed import seed_world

ORGS = "/api/v1/organisations"
RULES = "/api/v1/scoring/rules"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The usual test settings plus one page rule from the TOML file."""
    scoring = settings.scoring.model_copy(update={"page_rules": [
        PageRuleConfig(pattern="/docs/*", name="Documentation", category="docs", score=3)]})
    return settings.model_copy(update={"scoring": scoring})


@pytest.fixture
def world(hub: Hub, client: TestClient) -> dict[str, int]:
    with hub.engine.begin() as conn:
        return seed_world(conn, now=datetime.now(UTC), decay=hub.decay)


def org_names(client: TestClient, auth: dict[str, str], **params: Any) -> set[str]:
    r = client.get(ORGS, params=params, headers=auth)
    assert r.status_code == 200, r.text
    return {o["name"] for o in r.json()["items"]}


def visitor_names(client: TestClient, auth: dict[str, str]) -> set[str]:
    return {v["name"] for v in client.get("/api/v1/website-visitors", headers=auth)
            .json()["items"]}


def test_organisations_list_includes_isps_blocked_and_merged(
    client: TestClient, auth: dict[str, str], world: dict[str, int]
) -> None:
    body = client.get(ORGS, headers=auth).json()
    assert body["total"] == 8
    telekom = next(o for o in body["items"] if o["name"] == "Telekom")
    assert telekom["type"] == "isp" and telekom["is_website_visitor"] is False
    assert telekom["permalink"] is None
    acme = next(o for o in body["items"] if o["name"] == "Acme")
    assert acme["is_website_visitor"] is True and acme["permalink"].startswith("http")
    assert org_names(client, auth, type="isp") == {"Telekom"}
    assert org_names(client, auth, blocked="true") == {"Blocked Inc"}
    assert len(org_names(client, auth, blocked="false")) == 7
    assert org_names(client, auth, q="TELEKOM.DE") == {"Telekom"}
    assert client.get(ORGS, params={"type": "alien"}, headers=auth).status_code == 422
    assert client.get(ORGS).status_code == 401
    assert client.get(ORGS, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_reclassifying_an_isp_makes_it_a_website_visitor(
    client: TestClient, auth: dict[str, str], world: dict[str, int]
) -> None:
    assert "Telekom" not in visitor_names(client, auth)
    r = client.patch(f"{ORGS}/{world['telekom']}", headers=auth,
                     json={"type": "company", "name": "Telekom Business"})
    assert r.status_code == 200, r.text
    assert r.json()["type_set_by"] == "person" and r.json()["is_website_visitor"] is True
    assert "Telekom Business" in visitor_names(client, auth)


def test_blocking_hides_and_unblocking_shows_again(
    client: TestClient, auth: dict[str, str], world: dict[str, int]
) -> None:
    assert client.patch(f"{ORGS}/{world['acme']}", headers=auth,
                        json={"blocked": True}).json()["blocked"] is True
    assert "Acme" not in visitor_names(client, auth)
    client.patch(f"{ORGS}/{world['acme']}", headers=auth, json={"blocked": False})
    assert "Acme" in visitor_names(client, auth)


def test_owner_is_set_and_cleared(
    client: TestClient, auth: dict[str, str], world: dict[str, int]
) -> None:
    r = client.patch(f"{ORGS}/{world['globex']}", headers=auth, json={"owner": "Bob  Smith"})
    assert r.json()["owner"] == "Bob Smith"
    assert client.get("/api/v1/website-visitors", params={"owner": "bob smith"},
                      headers=auth).json()["total"] == 1
    r = client.patch(f"{ORGS}/{world['globex']}", headers=auth, json={"owner": None})
    assert r.status_code == 200 and r.json()["owner"] is None


@pytest.mark.parametrize(("body", "status", "named"), [
    ({}, 422, "at least one"),
    ({"type": "alien"}, 422, "type"),
    ({"name": ""}, 422, "name"),
    ({"name": None}, 422, "name"),
    ({"colour": "red"}, 422, "colour"),
])
def test_bad_corrections_are_refused(
    client: TestClient, auth: dict[str, str], world: dict[str, int],
    body: dict[str, Any], status: int, named: str,
) -> None:
    r = client.patch(f"{ORGS}/{world['acme']}", headers=auth, json=body)
    assert r.status_code == status and named in r.json()["detail"], r.text


def test_corrections_of_unknown_or_merged_organisations(
    client: TestClient, auth: dict[str, str], world: dict[str, int]
) -> None:
    assert client.patch(f"{ORGS}/99999", headers=auth, json={"name": "X"}).status_code == 404
    r = client.patch(f"{ORGS}/{world['merged']}", headers=auth, json={"owner": "Bob"})
    assert r.status_code == 400 and "merged" in r.json()["detail"]
    assert client.patch(f"{ORGS}/{world['acme']}", json={"name": "X"}).status_code == 401


def test_merge_moves_hits_and_totals_to_the_survivor(
    client: TestClient, auth: dict[str, str], world: dict[str, int]
) -> None:
    r = client.post(f"{ORGS}/{world['globex']}/merge", headers=auth,
                    json={"into_id": world["acme"]})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == world["acme"] and r.json()["hit_count"] == 2
    assert "Globex" not in visitor_names(client, auth)
    acme = client.get(f"/api/v1/website-visitors/{world['acme']}", headers=auth).json()
    assert {h["category"] for h in acme["hits"]} == {"pricing", "docs"}
    assert acme["score"] == pytest.approx(110, abs=0.1)


@pytest.mark.parametrize(("source", "into", "status"), [
    ("acme", "acme", 400), ("acme", "nowhere", 404), ("merged", "globex", 400)])
def test_bad_merges_are_refused(
    client: TestClient, auth: dict[str, str], world: dict[str, int],
    source: str, into: str, status: int,
) -> None:
    r = client.post(f"{ORGS}/{world[source]}/merge", headers=auth,
                    json={"into_id": world.get(into, 99999)})
    assert r.status_code == status, r.text
    assert client.post(f"{ORGS}/{world['acme']}/merge", headers=auth,
                       json={"into": 1}).status_code == 422


def test_rules_show_their_source_half_life_and_bands(
    client: TestClient, auth: dict[str, str]
) -> None:
    body = client.get(RULES, headers=auth).json()
    assert body["half_life_days"] == 30 and body["bands"] == {"cold": 0, "warm": 20, "hot": 50}
    assert body["page_rules"] == [{"pattern": "/docs/*", "name": "Documentation",
                                   "category": "docs", "score": 3, "source": "config"}]
    assert body["event_rules"] == []
    assert client.get(RULES).status_code == 401


def test_replacing_rules_rescores_history(
    client: TestClient, site_id: int, auth: dict[str, str], hub: Hub
) -> None:
    track(client, site_id, "https://www.example.com/pricing/enterprise")
    track(client, site_id, "https://www.example.com/docs/start")
    assert sorted(r.score for r in rows(hub.engine, "SELECT score FROM hits")) == [1.0, 3.0]
    r = client.put(RULES, headers=auth, json={
        "page_rules": [{"pattern": "/pricing*", "name": "Pricing", "category": "pricing",
                        "score": 10}],
        "event_rules": [{"category": "video", "action": "play", "label": "Video", "score": 4}],
    })
    assert r.status_code == 202, r.text
    fingerprint = r.json()["fingerprint"]
    # the test client returns once background tasks are done
    [hit] = rows(hub.engine, "SELECT page_name, category, score FROM hits "
                             "WHERE url LIKE '%pricing%'")
    assert (hit.page_name, hit.category, hit.score) == ("Pricing", "pricing", 10.0)
    visitor = client.get("/api/v1/website-visitors", headers=auth).json()["items"][0]
    assert visitor["score"] == pytest.approx(13, abs=0.01)  # 10 + 3, no longer 1 + 3
    body = client.get(RULES, headers=auth).json()
    assert [(x["pattern"], x["source"]) for x in body["page_rules"]] == [
        ("/docs/*", "config"), ("/pricing*", "api")]
    assert body["event_rules"][0]["label"] == "Video" and body["event_rules"][0]["source"] == "api"
    assert body["fingerprint"] == body["scored_fingerprint"] == fingerprint
    # new hits use the new rules at once
    track(client, site_id, "https://www.example.com/pricing")
    assert scalar(hub.engine, "SELECT count(*) FROM hits WHERE category = 'pricing'") == 2


def test_invalid_pattern_is_a_400_naming_it_and_changes_nothing(
    client: TestClient, auth: dict[str, str], hub: Hub
) -> None:
    client.put(RULES, headers=auth, json={"page_rules": [{"pattern": "/a*", "score": 1}]})
    r = client.put(RULES, headers=auth, json={"page_rules": [
        {"pattern": "/ok*", "score": 1}, {"pattern": "re:pricing(", "score": 5}]})
    assert r.status_code == 400 and "re:pricing(" in r.json()["detail"]
    assert [x["pattern"] for x in client.get(RULES, headers=auth).json()["page_rules"]] == [
        "/docs/*", "/a*"]


@pytest.mark.parametrize(("body", "named"), [
    ({"page_rules": [{"pattern": ""}]}, "pattern"),
    ({"page_rules": [{"pattern": "/x", "score": "high"}]}, "score"),
    ({"page_rules": [{"pattern": "/x", "weight": 3}]}, "weight"),
    ({"rules": []}, "rules"),
])
def test_malformed_rules_are_a_422_naming_the_field(
    client: TestClient, auth: dict[str, str], body: dict[str, Any], named: str
) -> None:
    r = client.put(RULES, headers=auth, json=body)
    assert r.status_code == 422 and named in r.json()["detail"], r.text
    assert client.put(RULES, json={"page_rules": []}).status_code == 401
