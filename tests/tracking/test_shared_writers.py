"""Two writers on one database (as `serve --workers 2` runs them) add to the same Website
Visitors, contacts and browsers at once, in opposite orders: every hit is stored once and no
addition is lost. The totals lock their rows in key order; where two writers still collide
(PostgreSQL then aborts one), the writer stores that batch again hit by hit."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from leadbridge.hub import Hub
from leadbridge.identify.contacts import Identity
from leadbridge.tracking.batch import BatchWriter, PreparedHit
from leadbridge.tracking.groupcommit import GroupCommit
from leadbridge.tracking.request import TrackingRequest

COMPANY_IPS = ["198.51.100.20", "203.0.113.9"]  # Testclient Industries, Acme Corp
BATCHES = 25


def _batch(hub: Hub, site_id: int, start: datetime, reverse: bool) -> list[PreparedHit]:
    out = []
    for n in range(8):
        request = TrackingRequest(
            site_id=site_id, url=f"https://www.example.com/pricing/{n}",
            visitor_key=f"{n:016x}", user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
            ip=COMPANY_IPS[n % 2])
        out.append(hub.intake.prepare(request, start + timedelta(seconds=n)))
    out[0].identity = Identity(email="reader@testclient.example")
    return out[::-1] if reverse else out


def test_two_writers_share_the_totals(hub: Hub, site_id: int) -> None:
    errors: list[BaseException] = []
    start = datetime.now(UTC) - timedelta(hours=1)
    barrier = threading.Barrier(2)

    def write(reverse: bool) -> None:
        commit = GroupCommit(hub.engine, BatchWriter(hub.decay))
        try:
            barrier.wait(timeout=10)
            for i in range(BATCHES):
                moment = start + timedelta(minutes=10 * i)  # past SEEN_PRECISION each time
                results = commit.write_each_now(_batch(hub, site_id, moment, reverse))
                errors.extend(r for r in results if r is not None)
        except BaseException as exc:  # reported by the assertions below
            errors.append(exc)
        finally:
            commit.close()

    threads = [threading.Thread(target=write, args=(r,)) for r in (False, True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    with hub.engine.connect() as conn:
        counts = {name: n for name, n in conn.execute(text(
            "SELECT name, hit_count FROM organisations WHERE hit_count > 0"))}
        hits = conn.execute(text("SELECT count(*) FROM hits")).scalar_one()
        contact_hits = conn.execute(text("SELECT hit_count FROM contacts")).scalar_one()
        browsers = conn.execute(text("SELECT count(*) FROM browser_visitors")).scalar_one()
    assert hits == 2 * BATCHES * 8
    assert counts == {"Testclient Industries": BATCHES * 8, "Acme Corp": BATCHES * 8}
    assert browsers == 8
    # the first hit of each batch identifies the contact; its browser's later hits count too
    assert contact_hits >= 2 * BATCHES
