"""The sync error queue, run log and on-demand cycle through the API, on both databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from leadbridge import connections as registry
from leadbridge.connectors.memory import MemoryCRM
from leadbridge.hub import Hub
from leadbridge.identify.contacts import Identity, get_or_create_contact
from leadbridge.keyring import load_keyring


@pytest.fixture
def crm(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryCRM]:
    tiny = MemoryCRM(batch_size=10)
    monkeypatch.setitem(registry._FACTORIES, "memory", lambda settings, credentials: tiny)
    with hub.engine.begin() as conn:
        registry.add_connection(conn, load_keyring(hub.settings), "tiny", "memory", {}, {})
        get_or_create_contact(conn, Identity(email="api@example.com", name="Api"), hub.now())
    yield tiny


def test_plan_run_errors_and_runs(client: TestClient, auth: dict[str, str], crm: MemoryCRM) -> None:
    plan = client.post("/api/v1/sync/tiny/run", params={"dry_run": "true"}, headers=auth)
    assert plan.status_code == 200, plan.text
    [cycle] = plan.json()
    assert [p["operation"] for p in cycle["plan"]] == ["create"] and crm.records["contacts"] == {}
    crm.refuse("contacts", "email: invalid", ref="1")
    failed = client.post("/api/v1/sync/tiny/run", headers=auth).json()[0]
    assert failed["status"] == "partial" and failed["counts"]["push:contact"]["failed"] == 1
    [error] = client.get("/api/v1/sync/errors", headers=auth).json()
    assert error["reason"] == "email: invalid" and error["record_key"] == "1"
    assert client.post(f"/api/v1/sync/errors/{error['id']}/retry", headers=auth).status_code == 204
    crm.clear_failures()
    ok = client.post("/api/v1/sync/tiny/run", headers=auth).json()[0]
    assert ok["status"] == "ok" and ok["counts"]["push:contact"]["created"] == 1
    assert client.get("/api/v1/sync/errors", headers=auth).json() == []
    assert client.get("/api/v1/sync/errors", params={"status": "all"},
                      headers=auth).json()[0]["status"] == "resolved"
    runs = client.get("/api/v1/sync/runs", headers=auth).json()
    assert [r["status"] for r in runs] == ["ok", "partial"]


def test_sync_endpoints_need_a_key_and_valid_input(client: TestClient, auth: dict[str, str],
                                                   crm: MemoryCRM) -> None:
    assert client.get("/api/v1/sync/errors").status_code == 401
    assert client.post("/api/v1/sync/tiny/run").status_code == 401
    assert client.get("/api/v1/sync/errors", params={"status": "bogus"},
                      headers=auth).status_code == 422
    assert client.post("/api/v1/sync/errors/999/dismiss", headers=auth).status_code == 404
    assert client.post("/api/v1/sync/nope/run", headers=auth).status_code == 404
