"""Website Visitors, their hits and contacts, and sync cycles against a memory CRM, for the
visitor-sync tests (fixtures `crm` and `connection_id` are in tests/sync/conftest.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, update

from leadbridge.config import Settings
from leadbridge.connectors.memory import MemoryCRM
from leadbridge.store.tables import contacts, organisations
from leadbridge.sync.defaults import manual_for
from leadbridge.sync.engine import CycleReport, SyncEngine
from leadbridge.sync.mapping import MappingManual
from visitor_seed import DECAY, NOW, HitSeed, add_hits, add_org

MANUAL = manual_for("tiny", "memory", {})


def sync(engine: Engine, settings: Settings, cid: int, crm: MemoryCRM,
         at: datetime = NOW, manual: MappingManual = MANUAL) -> CycleReport:
    clock = iter(at + timedelta(seconds=i) for i in range(10_000))
    report = SyncEngine(engine, settings, cid, crm, manual, sleep=lambda s: None,
                        clock=lambda: next(clock)).run()
    assert not report.failures, report.failures
    return report


def visitor(engine: Engine, name: str, *, score: float = 0.0, days_ago: float = 1.0,
            **values: Any) -> tuple[int, str]:
    """A Website Visitor (or, with `type=`, another organisation); (id, permalink token)."""
    with engine.begin() as conn:
        return add_org(conn, name, score=score, days_ago=days_ago, **values)


def contact(engine: Engine, email: str, organisation_id: int | None,
            name: str | None = None) -> int:
    with engine.begin() as conn:
        return int(conn.execute(insert(contacts).values(
            email=email, name=name, organisation_id=organisation_id, created_at=NOW, updated_at=NOW,
            hit_count=0, score_weight=0.0).returning(contacts.c.id)).scalar_one())


def visit(engine: Engine, organisation_id: int, at: datetime, score: float,
          hits: int = 1, url: str = "https://www.example.com/pricing",
          written_at: datetime | None = None) -> None:
    """New scored hits at `at`, with the totals the intake keeps (weight, last visit, and
    `updated_at`: when the intake wrote them, `at` unless said)."""
    with engine.begin() as conn:
        add_hits(conn, [HitSeed(url, organisation_id, "pricing", score, minutes_ago=0)
                        for _ in range(hits)], now=at)
        row = conn.execute(select(organisations.c.score_weight)
                           .where(organisations.c.id == organisation_id)).one()
        conn.execute(update(organisations).where(organisations.c.id == organisation_id).values(
            score_weight=row.score_weight + hits * DECAY.weight(score, at),
            last_visit_at=at, updated_at=written_at or at))


def account_of(engine: Engine, organisation_id: int) -> str | None:
    with engine.connect() as conn:
        value = conn.execute(select(organisations.c.crm_account_id)
                             .where(organisations.c.id == organisation_id)).scalar()
    return None if value is None else str(value)


def permalink(settings: Settings, token: str) -> str:
    return f"{settings.public_url}/p/{token}"
