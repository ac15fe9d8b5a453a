"""Immediate pushes through the served app: tracking creates a Website Visitor or moves a
band, the intake batch asks for a sync in its own transaction, and the job runner pushes it
to the CRM within seconds — in `serve` itself on SQLite, and through a `leadbridge worker`
process on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, Engine, select, update
from starlette.testclient import TestClient

from leadbridge import connections as registry
from leadbridge.api.app import create_app
from leadbridge.apikeys import create_key
from leadbridge.config import Settings, load_settings
from leadbridge.connectors.memory import MemoryCRM
from leadbridge.hub import Hub
from leadbridge.keyring import load_keyring
from leadbridge.sites import add_site
from leadbridge.store.tables import jobs as jobs_table
from leadbridge.store.tables import organisations
from leadbridge.tracking import batch as batch_module
from support import TEST_RANGES, rows, scalar, track, wait_for

MANUAL = {"objects": [{
    "hub": "website_visitor", "crm": "accounts", "match": ["domain"],
    "fields": [
        {"hub": "name", "crm": "name"},
        {"hub": "domain", "crm": "domain"},
        {"hub": "score", "crm": "score", "direction": "to_crm"},
        {"hub": "band", "crm": "band", "direction": "to_crm"},
    ]}]}
PRICING = [{"pattern": "/pricing*", "name": "Pricing", "category": "pricing", "score": 15}]
NOT_UPKEEP = "task_name NOT LIKE 'leadbridge.%'"  # the worker's own periodic tasks aside
PROCRASTINATE_TABLES = ("procrastinate_events, procrastinate_periodic_defers, "
                        "procrastinate_jobs, procrastinate_workers")


def push_settings(db_url: str, tmp_path: Path, **jobs: Any) -> Settings:
    ranges = tmp_path / "ranges.csv"
    ranges.write_text(TEST_RANGES, encoding="utf-8")
    return load_settings(
        tmp_path / "absent.toml", database_url=db_url, data_dir=str(tmp_path / "var"),
        secret_key="test-secret-key-0123456789abcdef",
        identify={"ip_ranges_csv": str(ranges)},
        scoring={"page_rules": PRICING},
        # a day between scheduled cycles: any push seen within the test is an immediate one
        sync={"interval_minutes": 1440, "push_delay_seconds": 0.5, "mappings": {"tiny": MANUAL}},
        jobs={"run_in_serve": True, **jobs})


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("LEADBRIDGE_"):
            monkeypatch.delenv(key)


def add_tiny(engine: Engine, settings: Settings) -> None:
    with engine.begin() as conn:
        registry.add_connection(conn, load_keyring(settings), "tiny", "memory", {}, {})


def site_and_key(hub: Hub) -> tuple[int, str]:
    with hub.engine.begin() as conn:
        site = add_site(conn, "Shop", ["www.example.com"])
        _, key = create_key(conn, "tests")
    hub.refresh(force=True)
    return site.id, key


def accounts(crm: MemoryCRM) -> dict[str, dict[str, Any]]:
    return {str(a["name"]): a for a in crm.records["accounts"].values()}


# -- the intake's hooks ----------------------------------------------------------------------------

class Recorder:
    def __init__(self) -> None:
        self.calls: list[Connection] = []

    def __call__(self, conn: Connection) -> None:
        assert conn.in_transaction(), "a hook runs inside the batch's transaction"
        self.calls.append(conn)


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_the_batch_tells_of_new_website_visitors_and_band_changes_only(
        db_url: str, tmp_path: Path, clean_env: None) -> None:
    settings = push_settings(db_url, tmp_path, run_in_serve=False)
    hub = Hub(settings)
    site, key = site_and_key(hub)
    new, moved = Recorder(), Recorder()
    try:
        with TestClient(create_app(settings, hub), client=("198.51.100.7", 50000)) as client:
            hub.commit.writer.on_new_organisations = new
            hub.commit.writer.on_band_change = moved

            def hit(path: str, **params: str) -> tuple[int, int]:
                assert track(client, site, f"https://www.example.com{path}",
                             **params).status_code == 200
                return len(new.calls), len(moved.calls)

            assert hit("/pricing") == (1, 0)  # a new Website Visitor, 15 points: still cold
            assert hit("/pricing") == (1, 1)  # 30: warm
            assert hit("/about") == (1, 1)  # 31: warm still
            assert hit("/pricing") == (1, 1)  # 46
            assert hit("/pricing") == (1, 2)  # 61: hot
            # an ISP is no Website Visitor: neither its creation nor its score counts
            for _ in range(5):
                assert hit("/pricing", cip="203.0.113.200", token_auth=key) == (1, 2)
            # another company is
            assert hit("/", cip="203.0.113.5", token_auth=key) == (2, 2)
    finally:
        hub.close()
    assert all(c is new.calls[0] for c in new.calls + moved.calls), "the batch's own connection"


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_a_band_crossed_with_another_writers_points_is_seen_once_its_weights_are_read_again(
        db_url: str, tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_module, "_WEIGHTS_FOR", 0.0)  # read weights every batch
    settings = push_settings(db_url, tmp_path, run_in_serve=False)
    hub = Hub(settings)
    site, _ = site_and_key(hub)
    moved = Recorder()
    try:
        with TestClient(create_app(settings, hub), client=("198.51.100.7", 50000)) as client:
            hub.commit.writer.on_band_change = moved
            assert track(client, site, "https://www.example.com/pricing").status_code == 200
            # another process adds 4.5 points: 19.5, still cold
            with hub.engine.begin() as conn:
                conn.execute(update(organisations).values(
                    score_weight=organisations.c.score_weight
                    + hub.commit.writer.decay.weight(4.5, datetime.now(UTC))))
            assert moved.calls == []
            assert track(client, site, "https://www.example.com/about").status_code == 200
            assert len(moved.calls) == 1  # 20.5: warm, with this writer's single point
    finally:
        hub.close()


# -- the served app pushes within seconds ---------------------------------------------------

@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("serving", [False, True], ids=["event_loop", "writer_process"])
def test_serve_pushes_a_new_website_visitor_and_its_band_change_within_seconds(
        db_url: str, tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch,
        serving: bool) -> None:
    settings = push_settings(db_url, tmp_path)
    crm = MemoryCRM(batch_size=10)
    monkeypatch.setitem(registry._FACTORIES, "memory", lambda s, c: crm)
    hub = Hub(settings, serving=serving)  # with serving, the writer process asks for the push
    add_tiny(hub.engine, settings)
    site, _ = site_and_key(hub)
    try:
        with TestClient(create_app(settings, hub), client=("198.51.100.7", 50000)) as client:
            # the start of the day's scheduled cycle runs at once; let it finish first
            wait_for(lambda: scalar(hub.engine, "SELECT count(*) FROM sync_runs "
                                                "WHERE status = 'ok'") == 1, 15)
            assert crm.records["accounts"] == {}
            tracked_at = datetime.now(UTC)
            assert track(client, site, "https://www.example.com/pricing").status_code == 200
            wait_for(lambda: "Testclient Industries" in accounts(crm), 15)
            account = accounts(crm)["Testclient Industries"]
            assert (account["domain"], account["band"]) == ("testclient.example", "cold")
            for _ in range(2):  # 45 points: warm
                assert track(client, site, "https://www.example.com/pricing").status_code == 200
            wait_for(lambda: accounts(crm)["Testclient Industries"]["band"] == "warm", 15)
        with hub.engine.connect() as conn:
            jobs = conn.execute(select(jobs_table.c.kind, jobs_table.c.key,
                                       jobs_table.c.created_at)
                                .where(jobs_table.c.kind == "sync_connection")
                                .order_by(jobs_table.c.id)).all()
    finally:
        hub.close()
    pushes = [j for j in jobs if j.created_at >= tracked_at]
    assert pushes and {(j.kind, j.key) for j in pushes} == {
        ("sync_connection", "sync_connection:tiny")}
    assert len(crm.records["accounts"]) == 1


BOOT = """
import json, sys
from pathlib import Path
from leadbridge.cli import app
from leadbridge.connections import register_connector
from leadbridge.connectors.memory import MemoryCRM

out = Path(sys.argv[1])
crm = MemoryCRM(batch_size=10)
carry_out = crm.apply

def apply(order):
    answers = carry_out(order)
    out.write_text(json.dumps(crm.records["accounts"]))  # what the CRM holds, for the test
    return answers

crm.apply = apply
register_connector("memory", lambda settings, credentials: crm)
app(["worker", "--concurrency", "1"])
"""


@pytest.fixture
def worker(pg_url: str, tmp_path: Path) -> Iterator[tuple[Settings, Path]]:
    """A `leadbridge worker` process with the memory CRM; its accounts in a JSON file."""
    db_url = pg_url
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {PROCRASTINATE_TABLES} RESTART IDENTITY CASCADE")
    settings = push_settings(db_url, tmp_path, run_in_serve=False)
    out = tmp_path / "crm-accounts.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADBRIDGE_")}
    env.update(LEADBRIDGE_DATABASE_URL=db_url, LEADBRIDGE_SECRET_KEY=settings.secret_key,
               LEADBRIDGE_DATA_DIR=str(tmp_path / "var"),
               LEADBRIDGE_SYNC__INTERVAL_MINUTES="1440",
               LEADBRIDGE_SYNC__MAPPINGS=json.dumps({"tiny": MANUAL}))
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-c", BOOT, str(out)], env=env, cwd=tmp_path,
                                stdout=sink, stderr=subprocess.STDOUT)
    try:
        yield settings, out
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
        if code != 0:
            print(log.read_text(encoding="utf-8", errors="replace"))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("serving", [False, True], ids=["event_loop", "writer_process"])
def test_on_postgresql_the_push_is_enqueued_with_the_hits_and_run_by_a_worker(
        db_url: str, engine: Engine, clean_env: None,
        worker: tuple[Settings, Path], serving: bool) -> None:
    settings, out = worker
    add_tiny(engine, settings)
    hub = Hub(settings, serving=serving)
    site, _ = site_and_key(hub)
    try:
        wait_for(lambda: scalar(engine, "SELECT count(*) FROM procrastinate_workers") == 1, 20)
        with TestClient(create_app(settings, hub), client=("198.51.100.7", 50000)) as client:
            assert track(client, site, "https://www.example.com/pricing").status_code == 200
            queued = rows(engine, "SELECT task_name, queueing_lock, lock FROM procrastinate_jobs "
                                  f"WHERE {NOT_UPKEEP}")
            assert [tuple(q) for q in queued] == [
                ("sync_connection", "sync_connection:tiny", "sync_connection:tiny")]

            def pushed() -> bool:
                return out.exists() and any(a.get("name") == "Testclient Industries"
                                            for a in json.loads(out.read_text()).values())

            wait_for(pushed, 20)
    finally:
        hub.close()
    wait_for(lambda: scalar(engine, "SELECT string_agg(status::text, ',') FROM "
                                    f"procrastinate_jobs WHERE {NOT_UPKEEP}") == "succeeded", 20)
    assert scalar(engine, "SELECT count(*) FROM object_links "
                          "WHERE hub_object = 'website_visitor'") == 1
