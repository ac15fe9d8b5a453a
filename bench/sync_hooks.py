"""What the intake's sync hooks cost: batches of hits written with and without the hooks
that detect new Website Visitors and band changes (`BatchWriter.on_new_organisations`,
`on_band_change`).

Both writers store the same kind of traffic (hits from a few hundred companies, some pages
scored) into their own database; rounds alternate between them so machine noise hits both.
Prints milliseconds per batch for each, the ratio, the time spent in the band check itself
(the ratio is noisy on a shared machine; the direct measure is not), and how often the hooks
fired.

    python bench/sync_hooks.py [--batches 60] [--batch-size 1000] [--companies 400]
                               [--database-url postgresql+psycopg://...  (two databases:
                                a URL with {n} in it, e.g. .../bench_{n})]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from leadbridge.config import load_settings
from leadbridge.hub import Hub
from leadbridge.scoring.decay import Bands
from leadbridge.sites import add_site
from leadbridge.store import make_engine, upgrade
from leadbridge.tracking.batch import PreparedHit
from leadbridge.tracking.request import TrackingRequest

UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/126.0.0.0 Safari/537.36")
PAGES = ["/", "/about", "/pricing", "/docs/start", "/blog/a", "/blog/b", "/pricing/enterprise"]


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, conn: Connection) -> None:
        self.calls += 1


def open_hub(url: str, work: Path, companies: int, label: str) -> tuple[Hub, int]:
    ranges = work / "ranges.csv"
    ranges.write_text("network,company,domain,type\n" + "".join(
        f"10.{i // 250}.{i % 250}.0/24,Company {i},company{i}.example,company\n"
        for i in range(companies)), encoding="utf-8")
    settings = load_settings(work / "absent.toml", database_url=url,
                             data_dir=str(work / f"var-{label}"),
                             secret_key="bench-secret-key-0123456789abcdef",
                             identify={"ip_ranges_csv": str(ranges)},
                             scoring={"page_rules": [{"pattern": "/pricing*", "score": 15}]})
    engine = make_engine(url)
    upgrade(engine)
    hub = Hub(settings, engine)
    with engine.begin() as conn:
        site = add_site(conn, "Bench", ["www.example.com"]).id
    hub.refresh(force=True)
    return hub, site


def batch(hub: Hub, site: int, size: int, companies: int, rng: random.Random) -> list[PreparedHit]:
    now = datetime.now(UTC)
    hits = []
    for _ in range(size):
        company = rng.randrange(companies)
        ip = f"10.{company // 250}.{company % 250}.{rng.randrange(1, 250)}"
        request = TrackingRequest(site_id=site, url=f"https://www.example.com{rng.choice(PAGES)}",
                                  visitor_key=f"{rng.getrandbits(64):016x}", user_agent=UA,
                                  ip=ip)
        hits.append(hub.intake.prepare(request, now))
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--companies", type=int, default=400)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        urls = ([args.database_url.format(n=n) for n in (1, 2)] if args.database_url
                else [f"sqlite:///{work / f'bench-{n}.db'}" for n in (1, 2)])
        plain, site_plain = open_hub(urls[0], work, args.companies, "plain")
        hooked, site_hooked = open_hub(urls[1], work, args.companies, "hooked")
        new, moved = Counter(), Counter()
        hooked.commit.writer.on_new_organisations = new
        hooked.commit.writer.on_band_change = moved
        hooked.commit.writer.bands = Bands(hooked.settings.scoring.bands)
        checking = [0.0]  # seconds spent in the band check itself
        check = hooked.commit.writer._band_moved

        def timed(*args: Any, **kwargs: Any) -> bool:
            began = time.perf_counter()
            try:
                return check(*args, **kwargs)
            finally:
                checking[0] += time.perf_counter() - began

        hooked.commit.writer._band_moved = timed  # type: ignore[method-assign]
        rng = random.Random(7)
        times: dict[str, list[float]] = {"without hooks": [], "with hooks": []}
        try:
            rounds = (("without hooks", plain, site_plain), ("with hooks", hooked, site_hooked))
            for n in range(args.batches):
                for label, hub, site in rounds if n % 2 else reversed(rounds):
                    hits = batch(hub, site, args.batch_size, args.companies, rng)
                    began = time.perf_counter()
                    hub.commit.write_now(hits)
                    times[label].append(time.perf_counter() - began)
        finally:
            plain.close()
            hooked.close()
    base = statistics.median(times["without hooks"][5:])  # the first batches create companies
    with_hooks = statistics.median(times["with hooks"][5:])
    print(f"{args.batches} batches of {args.batch_size} hits from {args.companies} companies "
          f"on {urls[0].split(':')[0]}")
    print(f"  without hooks: {base * 1000:8.2f} ms per batch (median)")
    print(f"  with hooks:    {with_hooks * 1000:8.2f} ms per batch (median)")
    print(f"  ratio:         {with_hooks / base:8.3f}")
    per_batch = checking[0] / args.batches
    print(f"  band check:    {per_batch * 1000:8.2f} ms per batch (measured inside the writer: "
          f"{per_batch / base:.1%} of a batch)")
    print(f"  hooks fired:   new Website Visitors in {new.calls} batches, band changes in "
          f"{moved.calls} batches")


if __name__ == "__main__":
    main()
