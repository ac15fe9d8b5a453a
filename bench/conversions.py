"""Conversion import benchmark: a generated CSV imported, validated, de-duplicated, matched
and attributed into a SQLite hub seeded with real browser visitors (with hits) and calls.

For each size, in a fresh process (so its peak memory is the import's own): the rate of
merely reading the file with the csv module (the baseline, same run, same file), the rate of
the full import, their ratio — by wall clock and by CPU time, as the machine may be shared —
and the process's peak resident memory before and after the import.
About 2% of rows repeat an earlier transaction (merged) and 2% are broken (rejected); the
report's counts are checked to add up.

    python bench/conversions.py [--sizes 250000,500000,1000000] [--visitors 50000]
                                [--no-attribution]
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import random
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from leadbridge.config import ConversionsSettings
from leadbridge.conversions.importer import import_path
from leadbridge.store import make_engine, upgrade
from leadbridge.store.bulk import BulkInsert
from leadbridge.store.ids import new_id
from leadbridge.store.tables import browser_visitors, calls, hits, sites

START = datetime(2026, 1, 1, tzinfo=UTC)
CHANNELS = [("organic_search", "https://www.google.com/", None, None),
            ("paid_search", "https://www.google.com/", "brand", "google"),
            ("email", None, "spring", "newsletter"), ("direct", None, None, None),
            ("social", "https://www.linkedin.com/", None, None)]
HEADER = ["action", "title", "occurred_at", "transaction_ref", "amount", "currency", "margin",
          "visitor_id", "call_ref"]


def seed(db: Path, visitors: int, n_calls: int) -> tuple[list[str], list[str]]:
    """Browser visitors with three hits each over a month, and calls (half from the web)."""
    engine = make_engine(f"sqlite:///{db}", synchronous="NORMAL")
    upgrade(engine)
    rnd = random.Random(7)
    keys = [f"{rnd.getrandbits(64):016x}" for _ in range(visitors)]
    refs = [f"CALL-{i:07d}" for i in range(n_calls)]
    with engine.begin() as conn:
        site = conn.execute(insert(sites).values(name="Shop", hosts=["www.example.com"],
                                                 created_at=START).returning(sites.c.id))
        site_id = site.scalar_one()
        conn.execute(insert(browser_visitors), [
            {"site_id": site_id, "visitor_key": k, "first_seen_at": START,
             "last_seen_at": START} for k in keys])
        rows = []
        for bv in range(1, visitors + 1):
            for n in range(3):
                channel, referrer, campaign, source = rnd.choice(CHANNELS)
                rows.append({
                    "id": new_id(), "site_id": site_id, "browser_visitor_id": bv,
                    "occurred_at": START + timedelta(days=rnd.random() * 30, hours=n),
                    "kind": "pageview", "url": "https://www.example.com/", "score": 1.0,
                    "is_bot": False, "channel": channel, "referrer": referrer,
                    "campaign_name": campaign, "campaign_source": source})
        BulkInsert(hits, "sqlite").execute(conn, rows)
        conn.execute(insert(calls), [
            {"call_ref": r, "tracking_number": "+442071838750", "started_at": START,
             "duration_s": 60, "browser_visitor_id": (i % visitors) + 1 if i % 2 else None,
             "created_at": START} for i, r in enumerate(refs)])
    engine.dispose()
    return keys, refs


def generate(path: Path, rows: int, keys: list[str], refs: list[str]) -> None:
    """`rows` data rows: ~2% repeat an earlier transaction, ~2% are broken in varied ways."""
    rnd = random.Random(11)
    broken = [
        lambda r: r.__setitem__(2, "31/01/2026"),  # bad date
        lambda r: r.__setitem__(4, "-10.00"),  # negative amount
        lambda r: r.__setitem__(5, "EURO"),  # bad currency
        lambda r: r.__setitem__(7, "ffffffffffffffff"),  # unknown visitor
        lambda r: (r.__setitem__(7, ""), r.__setitem__(8, "")),  # missing both ids
        lambda r: (r.__setitem__(7, ""), r.__setitem__(8, "CALL-UNKNOWN")),  # unknown call
    ]
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i in range(rows):
            when = START + timedelta(days=31 + rnd.random() * 30)
            roll = rnd.random()
            ref = f"TX-{rnd.randrange(max(i, 1)):09d}" if roll < 0.02 else f"TX-{i:09d}"
            row = ["sale", f"Order {i}", when.isoformat(timespec="seconds"), ref,
                   f"{rnd.randrange(100, 500_000) / 100:.2f}", "EUR",
                   f"{rnd.randrange(10, 50_000) / 100:.2f}", rnd.choice(keys), ""]
            if rnd.random() < 0.1:  # a call instead of a visitor
                row[7], row[8] = "", rnd.choice(refs)
            if 0.02 <= roll < 0.04:
                rnd.choice(broken)(row)
            out.writerow(row)


def rss_mib() -> float:
    """Peak resident memory of this process image (VmHWM: ru_maxrss would carry over the
    parent's peak across fork and exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(db: Path, data: Path, rows: int, attribute: bool, queue: Any) -> None:
    """In a fresh process: the csv-module baseline, then the full import of the same file."""
    wall, cpu = time.perf_counter(), time.process_time()
    with data.open(newline="", encoding="utf-8-sig") as f:
        read = sum(1 for _ in csv.reader(f)) - 1
    parse = (time.perf_counter() - wall, time.process_time() - cpu)
    engine = make_engine(f"sqlite:///{db}", synchronous="NORMAL")
    before = rss_mib()
    wall, cpu = time.perf_counter(), time.process_time()
    report = (import_path(engine, data, settings=ConversionsSettings()) if attribute
              else import_path(engine, data, settings=ConversionsSettings(), attribute=None))
    full = (time.perf_counter() - wall, time.process_time() - cpu)
    after = rss_mib()
    engine.dispose()
    assert report.adds_up and report.rows_read == read == rows, report.to_dict()
    queue.put({"parse": parse, "import": full, "accepted": report.accepted,
               "merged": report.merged, "rejected": report.rejected, "rss_before": before,
               "rss_after": after})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="250000,500000,1000000")
    parser.add_argument("--visitors", type=int, default=50_000)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--no-attribution", action="store_true",
                        help="intake alone: validate, match, de-duplicate, store")
    args = parser.parse_args()
    print(f"conversions import, SQLite (synchronous=NORMAL), {args.visitors:,} browser visitors "
          f"with 3 hits each, {args.calls:,} calls; batches of "
          f"{ConversionsSettings().batch_size:,} rows; attribution "
          f"{'left out' if args.no_attribution else 'included'}")
    print(f"{'rows':>10} {'MiB':>6} | {'csv rows/s':>10} {'import rows/s':>13} {'ratio':>6} "
          f"| {'csv rows/s':>10} {'import rows/s':>13} {'ratio':>6} | {'accepted':>9} "
          f"{'merged':>7} {'rejected':>8} | {'RSS before':>10} {'RSS peak':>8}")
    print(f"{'':>17} | {'wall clock':^32} | {'CPU time (one core)':^32} |")
    ctx = multiprocessing.get_context("spawn")
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            db, data = Path(tmp) / "hub.db", Path(tmp) / "conversions.csv"
            keys, refs = seed(db, args.visitors, args.calls)
            generate(data, size, keys, refs)
            queue = ctx.Queue()
            proc = ctx.Process(target=measure,
                               args=(db, data, size, not args.no_attribution, queue))
            proc.start()
            r = queue.get()
            proc.join()
            mib = data.stat().st_size / 2**20
        cells = []
        for i in (0, 1):  # wall, CPU
            parse_rate, import_rate = size / r["parse"][i], size / r["import"][i]
            cells.append(f"{parse_rate:>10,.0f} {import_rate:>13,.0f} "
                         f"{parse_rate / import_rate:>5.1f}x")
        print(f"{size:>10,} {mib:>6.1f} | {cells[0]} | {cells[1]} | {r['accepted']:>9,} "
              f"{r['merged']:>7,} {r['rejected']:>8,} | {r['rss_before']:>6.0f} MiB "
              f"{r['rss_after']:>4.0f} MiB", flush=True)
    print("ratio = csv-module rate / full-import rate on the same file in the same process; "
          "RSS = peak resident memory of that process before and after the import")


if __name__ == "__main__":
    main()
