"""BulkInsert stores exactly what Core would: every column type, odd text, NULLs, and one
row as well as many (PostgreSQL takes a batch as one JSON parameter)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import psycopg
import pytest
from sqlalchemy import Engine, select

from leadbridge.store.bulk import BulkInsert
from leadbridge.store.ids import new_hex_id
from leadbridge.store.tables import conversions, hits

MOMENT = datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)
ODD_TEXT = 'quote " apostrophe \' backslash \\ brace } comma , newline\n é 漢 🙂'


def _hit(n: int, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": new_hex_id(), "site_id": 1, "occurred_at": MOMENT + timedelta(seconds=n),
        "kind": "pageview", "browser_visitor_id": 7, "url": f"https://www.example.com/{n}",
        "score": 2.5, "is_bot": n % 2 == 1,
    }
    row.update(extra)
    return row


@pytest.mark.parametrize("count", [1, 3])
def test_hits_round_trip(engine: Engine, count: int) -> None:
    rows = [_hit(n, page_title=ODD_TEXT, event_value=-1.25, contact_id=None,
                 time_on_page=n * 10 or None) for n in range(count)]
    with engine.begin() as conn:
        BulkInsert(hits, engine.dialect.name).execute(conn, rows)
    with engine.connect() as conn:
        stored = {r.url: r for r in conn.execute(select(hits))}
    assert len(stored) == count
    for row in rows:
        got = stored[str(row["url"])]
        assert got.id == UUID(str(row["id"]))
        assert got.occurred_at == row["occurred_at"]
        assert got.page_title == ODD_TEXT
        assert got.is_bot is row["is_bot"]
        assert got.score == 2.5 and got.event_value == -1.25
        assert got.contact_id is None and got.referrer is None
        assert got.time_on_page == row["time_on_page"]


def test_decimals_and_dates_are_exact(engine: Engine) -> None:
    rows = [{"id": UUID(new_hex_id()), "action": "sale", "occurred_at": MOMENT,
             "amount": Decimal("1234.5678"), "margin": Decimal(n), "currency": "EUR",
             "source": "api", "dedupe_key": f"k{n}", "created_at": MOMENT,
             "occurred_on": date(2026, 3, 1)} for n in range(2)]
    with engine.begin() as conn:
        BulkInsert(conversions, engine.dialect.name).execute(conn, rows)
    with engine.connect() as conn:
        got = conn.execute(select(conversions.c.amount, conversions.c.margin,
                                  conversions.c.occurred_on)
                           .order_by(conversions.c.dedupe_key)).all()
    assert [(Decimal(a), Decimal(m), d) for a, m, d in got] == [
        (Decimal("1234.5678"), Decimal(0), date(2026, 3, 1)),
        (Decimal("1234.5678"), Decimal(1), date(2026, 3, 1))]


def test_a_value_too_long_is_never_cut(engine: Engine) -> None:
    """PostgreSQL refuses the whole batch; SQLite, which has no VARCHAR limits, keeps it all."""
    rows = [_hit(0), _hit(1, kind="x" * 13)]  # kind is at most 12 characters
    insert = BulkInsert(hits, engine.dialect.name)
    if engine.dialect.name == "postgresql":
        with pytest.raises(psycopg.errors.StringDataRightTruncation, match="too long"), \
                engine.begin() as conn:
            insert.execute(conn, rows)
        expected: list[str] = []
    else:
        with engine.begin() as conn:
            insert.execute(conn, rows)
        expected = ["pageview", "x" * 13]
    with engine.connect() as conn:
        assert sorted(conn.execute(select(hits.c.kind)).scalars()) == expected
