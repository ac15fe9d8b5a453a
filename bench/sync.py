"""Sync engine benchmark: N hub contacts pushed through the engine to a CRM that answers at
once and keeps nothing, on SQLite.

Prints, per N: engine time per record (the cycle's time minus the time spent inside the
connector), API calls per 1,000 records next to the best possible for the connector's batch
size, and the peak Python memory of the cycle (tracemalloc). A second cycle with nothing
changed shows what a no-op cycle costs. tracemalloc slows every allocation down, so the time is
taken on one database and the memory on a second, identical one.

    python bench/sync.py [--sizes 25000,50000,100000] [--batch 100]
"""

from __future__ import annotations

import argparse
import itertools
import math
import tempfile
import time
import tracemalloc
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from leadbridge.config import load_settings
from leadbridge.connectors.base import (
    ItemResult,
    ObjectSpec,
    Operation,
    OrderItem,
    Outcome,
    RemoteRecord,
    ReportPage,
    ReportRequest,
)
from leadbridge.store import make_engine, upgrade
from leadbridge.store.tables import connections, contacts
from leadbridge.sync.engine import SyncEngine
from leadbridge.sync.mapping import MappingManual

NOW = datetime.now(UTC)
MANUAL = MappingManual.model_validate({"objects": [{
    "hub": "contact", "crm": "contacts", "match": ["email"],
    "fields": [{"hub": "email", "crm": "email"}, {"hub": "name", "crm": "first_name"},
               {"hub": "score", "crm": "score", "direction": "to_crm"}]}]})


class InstantCRM:
    """Answers every call at once; remembers nothing but how long it was called for."""

    kind = "instant"

    def __init__(self, batch: int) -> None:
        self.objects = {"contacts": ObjectSpec("contacts", batch, ("email", "first_name",
                                                                    "score"), ("email",))}
        self._ids = itertools.count(1)
        self._calls = 0
        self.seconds = 0.0

    @property
    def calls(self) -> int:
        return self._calls

    def test(self) -> None:
        self._calls += 1

    def report(self, request: ReportRequest) -> ReportPage:
        self._calls += 1
        return ReportPage([], None, more=False)

    def apply(self, order: Sequence[OrderItem]) -> list[ItemResult]:
        started = time.perf_counter()
        self._calls += 1
        out = [ItemResult(i.ref, Outcome.CREATED if i.operation == Operation.CREATE
                          else Outcome.UPDATED, remote_id=str(next(self._ids))
                          if i.operation == Operation.CREATE else i.remote_id) for i in order]
        self.seconds += time.perf_counter() - started
        return out

    def find(self, object: str, match: Mapping[str, Any]) -> list[RemoteRecord]:
        self._calls += 1
        return []


def seeded(n: int, work: Path, name: str) -> tuple[Any, Any, int]:
    """A fresh SQLite database holding n contacts and one connection."""
    url = f"sqlite:///{work}/sync-{n}-{name}.db"
    db = make_engine(url)
    upgrade(db)
    settings = load_settings(work / "absent.toml", database_url=url, data_dir=str(work / "var"))
    with db.begin() as conn:
        cid = conn.execute(insert(connections).values(
            name="bench", kind="memory", settings={}, enabled=True, created_at=NOW,
            updated_at=NOW).returning(connections.c.id)).scalar_one()
        conn.execute(insert(contacts), [
            {"email": f"person{i}@example.com", "name": f"Person {i}", "created_at": NOW,
             "updated_at": NOW, "hit_count": 0, "score_weight": float(i % 50)}
            for i in range(n)])
    return db, settings, cid


def one_size(n: int, batch: int, work: Path) -> dict[str, float]:
    db, settings, cid = seeded(n, work, "memory")
    tracemalloc.start()
    SyncEngine(db, settings, cid, InstantCRM(batch), MANUAL).run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    db.dispose()

    db, settings, cid = seeded(n, work, "time")
    crm = InstantCRM(batch)
    started = time.perf_counter()
    report = SyncEngine(db, settings, cid, crm, MANUAL).run()
    total = time.perf_counter() - started
    created = report.counts["push:contact"]["created"]
    assert created == n, report.counts
    calls = report.api_calls
    best = math.ceil(n / batch) + 1  # the creates, plus one empty report page
    started = time.perf_counter()
    again = SyncEngine(db, settings, cid, crm, MANUAL).run()
    noop = time.perf_counter() - started
    db.dispose()
    return {"n": n, "engine_us": (total - crm.seconds) / n * 1e6, "calls_per_1k": calls / n * 1000,
            "best_per_1k": best / n * 1000, "ratio": calls / best, "peak_mb": peak / 2**20,
            "noop_s": noop, "noop_calls": again.api_calls}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="25000,50000,100000")
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()
    print(f"sync benchmark: contacts pushed to a CRM answering at once, batch size {args.batch}")
    print(f"{'records':>9}{'engine µs/rec':>15}{'calls/1k':>10}{'best/1k':>9}{'ratio':>7}"
          f"{'peak MB':>9}{'no-op cycle s':>15}{'no-op calls':>12}")
    with tempfile.TemporaryDirectory(prefix="lb-sync-bench-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            r = one_size(size, args.batch, Path(tmp))
            print(f"{int(r['n']):>9,}{r['engine_us']:>15.1f}{r['calls_per_1k']:>10.2f}"
                  f"{r['best_per_1k']:>9.2f}{r['ratio']:>7.3f}{r['peak_mb']:>9.1f}"
                  f"{r['noop_s']:>15.2f}{int(r['noop_calls']):>12}")
    print("targets: calls ≤ 1.05 x best; engine ≤ 100 µs per record; peak memory flat as the "
          "record count grows")


if __name__ == "__main__":
    main()
