"""`/api/v1/connections` on both databases, through the whole app: credentials go in and
never come out — not in responses, not in logs, not in clear in the database."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from leadbridge.hub import Hub
from leadbridge.keyring import load_keyring
from leadbridge.store.tables import connections, metadata

PLANTED = "PLANTED-s3cr3t-4242"
UNREACHABLE = "http://127.0.0.1:9"
URL = "/api/v1/connections"


def body(name: str = "main-crm", **overrides: Any) -> dict[str, Any]:
    return {
        "name": name, "kind": "bottlecrm", "settings": {"url": UNREACHABLE, "timeout": 5},
        "credentials": {"email": "sync@example.com", "password": PLANTED}, **overrides,
    }


def everything_in_clear(hub: Hub) -> str:
    with hub.engine.connect() as conn:
        return "\n".join(str(v) for t in metadata.sorted_tables
                         for row in conn.execute(select(t)) for v in row)


def test_planted_password_never_comes_back(
    client: TestClient, auth: dict[str, str], hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = client.post(URL, json=body(), headers=auth)
    assert created.status_code == 201, created.text
    made = created.json()
    assert made["name"] == "main-crm" and made["kind"] == "bottlecrm"
    assert made["settings"] == {"url": UNREACHABLE, "timeout": 5}
    assert made["has_credentials"] is True and made["enabled"] is True
    assert "credentials" not in made and "secret" not in made

    listed = client.get(URL, headers=auth)
    assert listed.status_code == 200 and [c["name"] for c in listed.json()] == ["main-crm"]
    tested = client.post(f"{URL}/main-crm/test", headers=auth)
    assert tested.status_code == 200, tested.text
    result = tested.json()
    assert result["ok"] is False and result["retriable"] is True
    assert "did not answer" in result["reason"]

    for response in (created, listed, tested):
        assert PLANTED not in response.text
    assert caplog.records, "httpx logs the login attempt, so the check below bites"
    for record in caplog.records:
        assert PLANTED not in record.getMessage()
        assert PLANTED not in str(record.exc_text)
    assert PLANTED not in caplog.text
    assert PLANTED not in everything_in_clear(hub)
    with hub.engine.connect() as conn:
        secret = conn.execute(select(connections.c.secret)).scalar_one()
    assert load_keyring(hub.settings).decrypt("main-crm", secret)["password"] == PLANTED


def test_delete_then_unknown_names_are_404(client: TestClient, auth: dict[str, str]) -> None:
    assert client.post(URL, json=body(), headers=auth).status_code == 201
    assert client.delete(f"{URL}/main-crm", headers=auth).status_code == 204
    assert client.get(URL, headers=auth).json() == []
    gone = client.delete(f"{URL}/main-crm", headers=auth)
    assert gone.status_code == 404 and "'main-crm' does not exist" in gone.json()["detail"]
    assert client.post(f"{URL}/main-crm/test", headers=auth).status_code == 404


def test_every_route_needs_an_api_key(client: TestClient) -> None:
    assert client.get(URL).status_code == 401
    assert client.post(URL, json=body()).status_code == 401
    assert client.delete(f"{URL}/main-crm").status_code == 401
    assert client.post(f"{URL}/main-crm/test").status_code == 401


@pytest.mark.parametrize(
    ("payload", "status", "needle"),
    [
        (body("Main CRM"), 400, "'Main CRM' is not a slug"),
        (body(kind="pipedrive"), 400, "unknown connection kind 'pipedrive'"),
        (body(settings={}), 400, "needs settings.url"),
        (body(settings={"url": f"https://u:{PLANTED}@crm.example.com"}), 400,
         "must not carry a user name or password"),
        (body(settings={"url": UNREACHABLE, "password": PLANTED}), 400, "looks like a credential"),
        (body(credentials={"email": "sync@example.com"}), 400, "needs credentials.password"),
        (body(credentials={"password": PLANTED}), 400, "needs credentials.email"),
        ({"kind": "bottlecrm", "settings": {"url": UNREACHABLE},
          "credentials": {"password": PLANTED}}, 422, "name: Field required"),
        (body(credentials={"email": "a@b.example", "password": 4242}), 422,
         "credentials.password"),
        (body(secret=PLANTED), 422, "secret: Extra inputs are not permitted"),
        (body(name="x" * 65), 422, "name: String should have at most 64 characters"),
    ],
)
def test_malformed_requests_get_a_clear_error_and_no_echo(
    client: TestClient, auth: dict[str, str], payload: dict[str, Any], status: int,
    needle: str,
) -> None:
    r = client.post(URL, json=payload, headers=auth)
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"]
    assert PLANTED not in r.text
    assert client.get(URL, headers=auth).json() == []


def test_a_duplicate_name_is_400(client: TestClient, auth: dict[str, str]) -> None:
    assert client.post(URL, json=body(), headers=auth).status_code == 201
    again = client.post(URL, json=body(), headers=auth)
    assert again.status_code == 400 and "already exists" in again.json()["detail"]


def test_a_kind_without_a_connector_tests_as_not_available(
    client: TestClient, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from leadbridge import connections as module
    from leadbridge.connections import KINDS, ConnectionKind

    monkeypatch.setitem(KINDS, "nowhere", ConnectionKind("nowhere", "No CRM"))
    monkeypatch.delitem(module._FACTORIES, "nowhere", raising=False)
    r = client.post(URL, json={"name": "later", "kind": "nowhere"}, headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["has_credentials"] is False
    tested = client.post(f"{URL}/later/test", headers=auth).json()
    assert tested == {"name": "later", "ok": False, "retriable": False,
                      "reason": "the connector for nowhere is not available yet"}


def test_undecryptable_credentials_test_as_failed_with_the_reason(
    client: TestClient, auth: dict[str, str], hub: Hub
) -> None:
    assert client.post(URL, json=body("first"), headers=auth).status_code == 201
    assert client.post(URL, json=body("second"), headers=auth).status_code == 201
    with hub.engine.begin() as conn:
        first = conn.execute(select(connections.c.secret)
                             .where(connections.c.name == "first")).scalar_one()
        conn.execute(connections.update().where(connections.c.name == "second")
                     .values(secret=first))
    tested = client.post(f"{URL}/second/test", headers=auth).json()
    assert tested["ok"] is False and "another connection" in tested["reason"]
