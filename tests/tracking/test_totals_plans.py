"""The totals of a batch are exact batch after batch, and on PostgreSQL their statements are
planned with the batch's ids every time: a prepared statement's generic plan, made without
them, scanned the whole table of Website Visitors on a database without statistics yet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from leadbridge.hub import Hub
from leadbridge.tracking.batch import BatchWriter, PreparedHit
from leadbridge.tracking.groupcommit import GroupCommit
from leadbridge.tracking.request import TrackingRequest

COMPANY_IPS = ["198.51.100.20", "203.0.113.9"]  # Testclient Industries, Acme Corp
BATCHES = 12  # more than psycopg's threshold (5) for preparing a statement it sees again


def _batch(hub: Hub, site_id: int, moment: datetime) -> list[PreparedHit]:
    return [hub.intake.prepare(TrackingRequest(
        site_id=site_id, url=f"https://www.example.com/{n}", visitor_key=f"{n:016x}",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", ip=COMPANY_IPS[n % 2]),
        moment + timedelta(seconds=n)) for n in range(6)]


def test_totals_stay_exact_and_are_planned_with_their_ids(hub: Hub, site_id: int) -> None:
    commit = GroupCommit(hub.engine, BatchWriter(hub.decay))
    start = datetime.now(UTC) - timedelta(hours=2)
    try:
        for i in range(BATCHES):
            commit.write_now(_batch(hub, site_id, start + timedelta(minutes=i)))
        prepared: list[str] = []
        if hub.engine.dialect.name == "postgresql":
            raw: Any = commit._connection().connection.dbapi_connection
            prepared = [row[0] for row in raw.execute(
                "SELECT statement FROM pg_prepared_statements")]
    finally:
        commit.close()
    with hub.engine.connect() as conn:
        counts = dict(conn.execute(text(
            "SELECT name, hit_count FROM organisations WHERE hit_count > 0")).all())
    assert counts == {"Testclient Industries": BATCHES * 3, "Acme Corp": BATCHES * 3}
    if hub.engine.dialect.name == "postgresql":
        assert any(s.startswith("INSERT INTO hits") for s in prepared)  # others are prepared
        totals = ("SELECT 1 FROM organisations", "UPDATE organisations AS t")
        assert not any(s.startswith(totals) for s in prepared), prepared
