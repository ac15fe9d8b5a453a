"""Raw-hit retention: hits older than the configured number of days are deleted.

Totals (scores, visit dates, hit counts) stay: they are already aggregated. Age is the hit's
own time (`occurred_at`), so back-dated hits go when their date is past the limit.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select

from leadbridge.store.tables import hits

CHUNK = 10_000


def apply_retention(engine: Engine, days: int, now: datetime) -> int:
    """Delete hits that occurred more than `days` days ago, in chunks; returns how many went."""
    cutoff = now - timedelta(days=days)
    removed = 0
    while True:
        with engine.begin() as conn:
            ids = list(conn.execute(select(hits.c.id).where(hits.c.occurred_at < cutoff)
                                    .limit(CHUNK)).scalars())
            if not ids:
                return removed
            removed += conn.execute(delete(hits).where(hits.c.id.in_(ids))).rowcount
