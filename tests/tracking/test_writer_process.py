"""The writer process of `leadbridge serve`: hits are stored by another process before the
answer; a hit the database refuses fails alone; a writer that dies fails only the hits it had
not answered and is started again; shutting down waits for every answer."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text
from starlette.testclient import TestClient

from leadbridge.api.app import create_app
from leadbridge.config import Settings
from leadbridge.errors import StoreError
from leadbridge.hub import Hub
from leadbridge.sites import add_site
from leadbridge.tracking import writerprocess
from leadbridge.tracking.batch import PreparedHit
from leadbridge.tracking.request import TrackingRequest
from leadbridge.tracking.writerprocess import WriterProcess
from support import rows, scalar, track, wait_for


@pytest.fixture
def served(settings: Settings) -> Iterator[Hub]:
    """The hub as `serve` opens it (hits go to a writer process), with one site."""
    hub = Hub(settings, serving=True)
    with hub.engine.begin() as conn:
        add_site(conn, "Example", ["www.example.com"])
    hub.refresh(force=True)
    yield hub
    hub.close()


def _site(hub: Hub) -> int:
    [site_id] = hub.sites
    return site_id


def _writer(hub: Hub) -> WriterProcess:
    process = hub.commit._process
    assert process is not None, "serve's hub writes in a writer process"
    return process


def _hit(hub: Hub, n: int, **changes: Any) -> PreparedHit:
    req = TrackingRequest(site_id=_site(hub), url=f"https://www.example.com/page-{n}",
                          visitor_key=f"{n:016x}", ip="198.51.100.7")
    hit = hub.intake.prepare(req, hub.now())
    hit.row.update(changes)
    return hit


def test_hits_are_stored_by_the_writer_process_before_the_answer(served: Hub) -> None:
    with TestClient(create_app(served.settings, served), client=("198.51.100.7", 50000)) as c:
        assert track(c, _site(served), "https://www.example.com/pricing").status_code == 200
        # no waiting: the answer came after the writer's commit
        assert scalar(served.engine, "SELECT count(*) FROM hits") == 1
        writer = _writer(served)
        assert writer.alive and writer.pid not in (None, os.getpid())
        bulk = c.post("/matomo.php", json={"requests": [
            f"?idsite={_site(served)}&rec=1&url=https%3A%2F%2Fwww.example.com%2F{i}"
            for i in range(40)]})
        assert bulk.status_code == 200 and bulk.json()["tracked"] == 40
        assert scalar(served.engine, "SELECT count(*) FROM hits") == 41
    assert not writer.alive  # stopped with the app


def test_a_hit_the_database_refuses_fails_alone(served: Hub) -> None:
    async def run() -> list[BaseException | None]:
        served.start()
        try:
            batch = [_hit(served, 1), _hit(served, 2, url=None), _hit(served, 3)]
            futures = [served.commit.submit(hit) for hit in batch]
            return await asyncio.gather(*futures, return_exceptions=True)
        finally:
            await served.aclose_intake()

    first, refused, third = asyncio.run(run())
    assert first is None and third is None
    assert isinstance(refused, StoreError) and "could not be stored" in str(refused)
    assert sorted(r.url for r in rows(served.engine, "SELECT url FROM hits")) == [
        "https://www.example.com/page-1", "https://www.example.com/page-3"]


def test_closing_waits_for_every_answer(served: Hub) -> None:
    async def run() -> list[BaseException | None]:
        served.start()
        futures = [served.commit.submit(_hit(served, n)) for n in range(200)]
        await served.aclose_intake()  # at once: the writer may not even have started yet
        return [f.exception() if f.done() else RuntimeError("not answered") for f in futures]

    assert asyncio.run(run()) == [None] * 200
    assert scalar(served.engine, "SELECT count(*) FROM hits") == 200


def _lock_hits(engine: Engine) -> tuple[Connection, Any]:
    """Hold the lock the writer needs to store hits, from this process."""
    conn = engine.connect()
    if engine.dialect.name == "sqlite":
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("BEGIN IMMEDIATE")
        return conn, lambda: raw.execute("ROLLBACK")
    trans = conn.begin()
    conn.execute(text("LOCK TABLE hits IN EXCLUSIVE MODE"))
    return conn, trans.rollback


def test_a_writer_that_dies_fails_its_unanswered_hits_and_is_started_again(
        served: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writerprocess, "RESTART_AFTER", 0.0)
    with TestClient(create_app(served.settings, served), client=("198.51.100.7", 50000)) as c:
        assert track(c, _site(served), "https://www.example.com/first").status_code == 200
        writer = _writer(served)
        first_pid = writer.pid
        assert first_pid is not None
        conn, release = _lock_hits(served.engine)
        answers: list[Any] = []
        try:
            sending = threading.Thread(target=lambda: answers.append(
                track(c, _site(served), "https://www.example.com/lost")))
            sending.start()
            wait_for(lambda: served.commit.batches == 2)  # sent; the writer waits for the lock
            os.kill(first_pid, signal.SIGKILL)
            sending.join(30)
        finally:
            release()
            conn.close()
        [lost] = answers
        assert lost.status_code == 503 and lost.json()["error"] == "store_unavailable"
        assert "send it again" in lost.json()["detail"]
        assert track(c, _site(served), "https://www.example.com/after").status_code == 200
        assert writer.starts == 2 and writer.pid not in (None, first_pid)
    assert [r.url for r in rows(served.engine, "SELECT url FROM hits ORDER BY occurred_at")] == [
        "https://www.example.com/first", "https://www.example.com/after"]
