"""The running hub applies raw-hit retention by itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.testclient import TestClient

from leadbridge.api.app import create_app
from leadbridge.hub import Hub
from support import scalar, track, wait_for


def test_serving_hub_deletes_hits_past_retention(hub: Hub, site_id: int, api_key: str) -> None:
    old = (datetime.now(UTC) - timedelta(days=400)).strftime("%Y-%m-%d %H:%M:%S")
    keep_all = hub.settings.privacy.raw_hit_retention_days
    hub.settings.privacy.raw_hit_retention_days = None  # no upkeep while the hits go in
    with TestClient(create_app(hub.settings, hub)) as client:
        track(client, site_id, "https://www.example.com/old", cdt=old, token_auth=api_key)
        track(client, site_id, "https://www.example.com/new")
    assert scalar(hub.engine, "SELECT count(*) FROM hits") == 2
    hub.settings.privacy.raw_hit_retention_days = keep_all  # 395 days by default
    hub2 = Hub(hub.settings)  # a restart: retention runs at start
    try:
        with TestClient(create_app(hub2.settings, hub2)):
            wait_for(lambda: scalar(hub.engine, "SELECT count(*) FROM hits") == 1)
        assert scalar(hub.engine, "SELECT url FROM hits") == "https://www.example.com/new"
    finally:
        hub2.close()
