"""Intake writer benchmark: the batch writer alone, on SQLite and PostgreSQL.

At the ingest benchmark's concurrency a request spends most of its time waiting for the
commit of its batch, so the writer sets the rate. This measures it without HTTP: realistic
hits (the ingest benchmark's traffic, prepared by the hub's own intake) are written in
batches the size the server forms (`--batch`), each committed and made durable as the writer
process does it (SQLite: the shared fsync of the write-ahead log, checkpoints in a thread).

The same-run baseline is the floor of the database: the same rows, ids filled in, inserted
into a copy of `hits` with no index, in the same batches and commits. For each backend it
prints the writer's CPU per hit (this process, all threads), PostgreSQL's backend CPU per hit,
the wall time per hit, and the ratio to the baseline. On SQLite it also counts the pages each
transaction sends to the write-ahead log, by table and index (every changed page is a frame).

    python bench/writer.py [--hits 20000] [--batch 28] [--backends sqlite,postgresql]

Needs PostgreSQL on 127.0.0.1:5432 for the postgresql backend.
"""

from __future__ import annotations

import argparse
import collections
import random
import sqlite3
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, Table

from ingest import (
    HOST,
    VISITORS,
    cpu_seconds,
    make_visitors,
    one_hit,
    scratch_database,
    write_ranges,
)
from leadbridge.config import load_settings
from leadbridge.hub import Hub
from leadbridge.sites import add_site
from leadbridge.store import make_engine, upgrade
from leadbridge.store.bulk import BulkInsert
from leadbridge.store.tables import hits
from leadbridge.tracking.batch import PreparedHit
from leadbridge.tracking.groupcommit import GroupCommit
from leadbridge.tracking.matomo import parse_matomo

COMPANIES = 2000


def prepared_hits(hub: Hub, site: int, count: int, seed: int) -> tuple[list[PreparedHit],
                                                                        list[PreparedHit]]:
    """One hit per visitor of the pool (the warm-up), then `count` hits of returning
    visitors."""
    rnd = random.Random(seed)
    pool = make_visitors(rnd, COMPANIES, VISITORS)
    now = hub.now()

    def prepare(visitor: tuple[str, str, str]) -> PreparedHit:
        req = parse_matomo(one_hit(rnd, site, visitor), remote_ip=visitor[2],
                           user_agent=visitor[1], accept_language=None, authenticated=False,
                           now=now)
        return hub.intake.prepare(req, now)

    return [prepare(v) for v in pool], [prepare(rnd.choice(pool)) for _ in range(count)]


class BackendCpu:
    """CPU time of the PostgreSQL backend behind a connection (0 for SQLite)."""

    def __init__(self, commit: GroupCommit) -> None:
        self.pid: int | None = None
        if commit.engine.dialect.name == "postgresql":
            raw: Any = commit._connection().connection.dbapi_connection
            self.pid = raw.info.backend_pid

    def seconds(self) -> float:
        return 0.0 if self.pid is None else cpu_seconds(self.pid)


def timed(run: Callable[[], None], backend: BackendCpu, count: int) -> dict[str, float]:
    cpu, wall, server = time.process_time(), time.perf_counter(), backend.seconds()
    run()
    return {"cpu": (time.process_time() - cpu) / count * 1e6,
            "wall": (time.perf_counter() - wall) / count * 1e6,
            "server": (backend.seconds() - server) / count * 1e6}


def bare_table(engine: Engine) -> Table:
    """`bench_hits`: the columns of `hits`, no key and no index."""
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS bench_hits")
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("CREATE TABLE bench_hits (LIKE hits)")
        else:
            conn.exec_driver_sql("CREATE TABLE bench_hits AS SELECT * FROM hits WHERE 0")
    return hits.to_metadata(MetaData(), name="bench_hits")


def wal_pages(database: Path, transactions: int) -> list[tuple[str, float]]:
    """Pages per transaction in the last `transactions` commits of the write-ahead log, by
    table or index (read from the log's frame headers and SQLite's dbstat)."""
    data = Path(f"{database}-wal").read_bytes()
    frame = struct.unpack(">I", data[8:12])[0] + 24  # the page size, from the log's header
    salts = data[16:24]  # frames of the log's current generation carry its salts
    commits: list[list[int]] = []
    pages: list[int] = []
    for offset in range(32, len(data) - frame + 1, frame):
        if data[offset + 8: offset + 16] != salts:
            break
        page, commit_size = struct.unpack(">II", data[offset: offset + 8])
        pages.append(page)
        if commit_size:
            commits.append(pages)
            pages = []
    con = sqlite3.connect(database)
    try:
        names = dict(con.execute("SELECT pageno, name FROM dbstat"))
    finally:
        con.close()
    last = commits[-transactions:]
    if not last:
        return []
    counts = collections.Counter(names.get(p, "?") for c in last for p in c)
    return [(name, n / len(last)) for name, n in counts.most_common()]


def bench_backend(backend: str, count: int, batch: int, work: Path) -> dict[str, Any]:
    url, drop = scratch_database(backend, work)
    ranges = work / f"ranges-{backend}.csv"
    write_ranges(ranges, COMPANIES)
    settings = load_settings(work / "absent.toml", database_url=url,
                             data_dir=str(work / "var"), identify={"ip_ranges_csv": str(ranges)})
    engine = make_engine(url)
    hub: Hub | None = None
    try:
        upgrade(engine)
        with engine.begin() as conn:
            site = add_site(conn, "Bench shop", [HOST]).id
        hub = Hub(settings, engine)
        commit = hub.commit
        warm, stream = prepared_hits(hub, site, count, seed=1)
        commit.start_checkpoints()
        for start in range(0, len(warm), 200):
            commit.write_now(warm[start: start + 200])
            commit.sync_now()
        cpu = BackendCpu(commit)
        batches = [stream[i: i + batch] for i in range(0, count, batch)]

        def write() -> None:
            for b in batches:
                commit.write_now(b)
                commit.sync_now()

        bare = BulkInsert(bare_table(engine), engine.dialect.name)
        writer = timed(write, cpu, count)
        frames = []
        if backend == "sqlite":
            # frames stay in the log until the checkpointer's next pass: counted at once
            database_file = work / "bench.db"
            frames = wal_pages(database_file, 50) if Path(f"{database_file}-wal").exists() \
                else []
        rows = [[h.row for h in b] for b in batches]  # as written: their ids filled in

        def baseline() -> None:
            conn = commit._connection()
            for r in rows:
                trans = conn.begin()
                bare.execute(conn, r)
                trans.commit()
                commit.sync_now()

        base = timed(baseline, cpu, count)
        return {"writer": writer, "baseline": base, "frames": frames,
                "batches": len(batches)}
    finally:
        if hub is not None:
            hub.close()
        engine.dispose()
        drop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hits", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=28, help="hits per transaction")
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args()
    print(f"intake writer benchmark: {args.hits:,} hits in transactions of {args.batch}, after a "
          f"warm-up that met each of {VISITORS:,} visitors once", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="lb-writer-") as tmp:
        for backend in args.backends.split(","):
            work = Path(tmp) / backend
            work.mkdir()
            results[backend] = bench_backend(backend, args.hits, args.batch, work)
    print(f"{'':<11}{'writer (µs per hit)':^27}{'baseline (µs per hit)':^27}")
    print(f"{'backend':<11}{'CPU':>9}{'db CPU':>9}{'wall':>9}{'CPU':>9}{'db CPU':>9}{'wall':>9}"
          f"{'wall ratio':>11}")
    for backend, r in results.items():
        w, b = r["writer"], r["baseline"]
        print(f"{backend:<11}{w['cpu']:>9.1f}{w['server']:>9.1f}{w['wall']:>9.1f}"
              f"{b['cpu']:>9.1f}{b['server']:>9.1f}{b['wall']:>9.1f}"
              f"{w['wall'] / b['wall']:>11.1f}")
    print("CPU = this process (all threads: the SQLite checkpointer and fsync too); db CPU = "
          "PostgreSQL's backend for the writer's connection;\n"
          "baseline = the same rows inserted into a copy of hits with no index, in the same "
          "transactions (the database's floor); wall ratio = writer ÷ baseline.")
    for backend, r in results.items():
        if r["frames"]:
            total = sum(n for _, n in r["frames"])
            parts = ", ".join(f"{name} {n:.1f}" for name, n in r["frames"][:6])
            print(f"{backend}: {total:.0f} pages per transaction to the write-ahead log: {parts}")


if __name__ == "__main__":
    main()
