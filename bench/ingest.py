"""Ingest benchmark: the running hub, driven over HTTP by wrk from a separate process.

For SQLite and PostgreSQL it starts `leadbridge serve` (one process and, by default, its writer
process), measures a trivial endpoint (/healthz) on that same server as the same-run baseline
(before and again after the intake run: the mean, and the drift between them), and replays
realistic mixed Matomo traffic: thousands of client IPs (X-Forwarded-For from a
trusted proxy), 20% bots, single GET page views and bulk POSTs. It prints requests/s, hits/s,
p50/p99 latency, peak server memory, and the intake/trivial ratio; then checks every
acknowledged hit is stored.

    python bench/ingest.py [--seconds 10] [--connections 32] [--backends sqlite,postgresql]
                           [--writer process|event_loop]

Needs `wrk` (installed with apt-get when missing) and PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("LEADBRIDGE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
HOST = "www.bench-shop.example"
VISITORS = 20_000
THREADS = int(os.environ.get("BENCH_WRK_THREADS", "2"))

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_{v}) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.{v} Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/17.{v} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel {v}) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Mobile Safari/537.36",
]
BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "python-requests/2.31.0",
    "curl/8.5.0",
]
PAGES = ["/", "/pricing", "/pricing/enterprise", "/product/tour", "/product/integrations",
         "/blog/visitor-identification", "/blog/lead-scoring", "/careers", "/contact",
         "/docs/getting-started", "/docs/api", "/customers", "/about"]
REFERRERS = ["", "", "https://www.google.com/", "https://www.bing.com/",
             "https://www.linkedin.com/", "https://news.example.net/article"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (apt-get) ...", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True,
                   stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or "wrk"


def write_ranges(path: Path, companies: int) -> None:
    """Company ranges in 10.0.0.0/8 (one /24 each) plus ISP and hosting ranges."""
    lines = ["network,company,domain,type"]
    for i in range(companies):
        lines.append(f"10.{i // 256}.{i % 256}.0/24,Company {i},company{i}.example,company")
    for i in range(20):
        lines.append(f"100.{64 + i}.0.0/16,Broadband {i},isp{i}.example,isp")
    lines.append("172.16.0.0/12,Hosting Co,hosting.example,hosting")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def visitor_ip(rnd: random.Random, companies: int) -> str:
    roll = rnd.random()
    if roll < 0.6:
        i = rnd.randrange(companies)
        return f"10.{i // 256}.{i % 256}.{rnd.randrange(1, 255)}"
    if roll < 0.9:
        return f"100.{64 + rnd.randrange(20)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"
    return f"172.{16 + rnd.randrange(16)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"


def make_visitors(rnd: random.Random, companies: int, count: int) -> list[tuple[str, str, str]]:
    """A pool of (visitor id, user agent, IP): one in five is a bot."""
    pool = []
    for _ in range(count):
        bot = rnd.random() < 0.20
        ua = rnd.choice(BOTS) if bot else rnd.choice(BROWSERS).format(v=rnd.randrange(110, 131))
        pool.append((f"{rnd.getrandbits(64):016x}", ua, visitor_ip(rnd, companies)))
    return pool


def one_hit(rnd: random.Random, site: int, visitor: tuple[str, str, str]) -> dict[str, str]:
    path = rnd.choice(PAGES)
    url = f"https://{HOST}{path}"
    if rnd.random() < 0.1:
        url += "?utm_source=newsletter&utm_medium=email&utm_campaign=autumn"
    params = {
        "idsite": str(site), "rec": "1", "url": url, "action_name": path.strip("/") or "Home",
        "_id": visitor[0], "res": "1920x1080", "h": "10", "m": "4",
        "s": "33", "urlref": rnd.choice(REFERRERS), "send_image": "0",
    }
    if rnd.random() < 0.05:
        params.update({"e_c": "download", "e_a": "click", "e_n": "brochure.pdf"})
    return params


def write_warmup(path: Path, site: int, companies: int, seed: int = 1) -> None:
    """One bulk request per 50 visitors of the pool: the hub has met everyone once."""
    rnd = random.Random(seed)
    pool = make_visitors(rnd, companies, VISITORS)
    with path.open("w", encoding="utf-8") as fh:
        for start in range(0, len(pool), 50):
            entries = []
            for vid, ua, ip in pool[start : start + 50]:
                params = one_hit(rnd, site, (vid, ua, ip))
                params.update({"ua": ua, "cip": ip})
                entries.append("?" + urlencode(params))
            fh.write(json.dumps({"requests": entries}) + "\n")


def write_requests(path: Path, site: int, companies: int, count: int, seed: int = 1) -> float:
    """One request per line for wrk: method, path, UA, X-Forwarded-For, body.

    Visitors come from a pool of 20,000 (so they return and read several pages); 90% of
    requests are single GETs, 10% bulk POSTs of 10 hits. Returns the mean hits per request.
    """
    rnd = random.Random(seed)
    pool = make_visitors(rnd, companies, VISITORS)
    hits = 0
    with path.open("w", encoding="utf-8") as fh:
        for _ in range(count):
            visitor = rnd.choice(pool)
            _, ua, ip = visitor
            if rnd.random() < 0.9:
                params = one_hit(rnd, site, visitor)
                fh.write(f"GET\t/matomo.php?{urlencode(params)}\t{ua}\t{ip}\t\n")
                hits += 1
            else:
                entries = ["?" + urlencode(one_hit(rnd, site, visitor)) for _ in range(10)]
                body = json.dumps({"requests": entries})
                fh.write(f"POST\t/matomo.php\t{ua}\t{ip}\t{body}\n")
                hits += 10
    return hits / count


WRK_SCRIPT = r"""
local reqs = {}
local n = 0
function init(args)
  for line in io.lines(args[1]) do
    local m, p, ua, ip, body = line:match("^(%u+)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    local h = {["User-Agent"] = ua, ["X-Forwarded-For"] = ip}
    if m == "POST" then h["Content-Type"] = "application/json" end
    n = n + 1
    reqs[n] = wrk.format(m, p, h, m == "POST" and body or nil)
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  i = math.random(n)
end
function request()
  i = i % n + 1
  return reqs[i]
end
"""


def run_wrk(wrk: str, url: str, seconds: int, conns: int, script: Path | None,
            args: list[str]) -> dict[str, float]:
    cmd = [wrk, f"-t{THREADS}", f"-c{conns}", f"-d{seconds}s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    cmd += [url]
    if args:
        cmd += ["--", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    return {"rps": rps, "requests": total, "p50": pct("50"), "p99": pct("99"),
            "non2xx": int(bad.group(1)) if bad else 0, "socket_errors": 1.0 if errors else 0.0}


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a process and its children (worker processes), in MB."""
    total = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            total += int(line.split()[1]) / 1024
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            total += peak_rss_mb(int(child))
    return total


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) of a process and its worker processes so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            total += cpu_seconds(int(child))
    return total


def count_hits(db_url: str) -> int:
    if db_url.startswith("sqlite"):
        import sqlite3

        con = sqlite3.connect(db_url.split("///", 1)[1])
        n = con.execute("SELECT count(*) FROM hits").fetchone()[0]
        con.close()
        return int(n)
    with psycopg.connect(db_url.replace("+psycopg", "")) as con:
        return int(con.execute("SELECT count(*) FROM hits").fetchone()[0])  # type: ignore[index]


def scratch_database(backend: str, work: Path) -> tuple[str, Callable[[], None]]:
    """A fresh database for `backend` (SQLite: `work/bench.db`) and how to drop it."""
    if backend == "sqlite":
        return f"sqlite:///{work / 'bench.db'}", lambda: None
    name = f"lb_bench_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}"')
        con.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{url}/{name}", drop


def bench_backend(backend: str, wrk: str, seconds: int, conns: int, work: Path,
                  workers: int = 1) -> dict[str, float]:
    db_url, drop = scratch_database(backend, work)
    companies = 2000
    ranges = work / f"ranges-{backend}.csv"
    write_ranges(ranges, companies)
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LEADBRIDGE_") or k == "LEADBRIDGE_TRACKING__WRITER"}
    env.update({"LEADBRIDGE_DATABASE_URL": db_url, "LEADBRIDGE_PORT": str(port),
                "LEADBRIDGE_DATA_DIR": str(work / "var"),
                "LEADBRIDGE_IDENTIFY__IP_RANGES_CSV": str(ranges),
                "LEADBRIDGE_TRACKING__TRUSTED_PROXIES": '["127.0.0.1"]'})
    leadbridge = [sys.executable, "-m", "leadbridge"]

    def cli(*args: str) -> str:
        return subprocess.run([*leadbridge, *args], env=env, cwd=work, check=True,
                              capture_output=True, text=True).stdout.strip()

    cli("db", "upgrade")
    site = int(cli("sites", "add", "Bench shop", "--host", HOST))
    key = cli("apikeys", "create", "bench")
    warmup_file = work / "warmup.jsonl"
    write_warmup(warmup_file, site, companies)
    requests_file = work / f"requests-{backend}.tsv"
    hits_per_request = write_requests(requests_file, site, companies, 50_000)
    script = work / "replay.lua"
    script.write_text(WRK_SCRIPT, encoding="utf-8")

    with open(work / "server.log", "w") as log:
        server = subprocess.Popen([*leadbridge, "serve", "--workers", str(workers)], env=env,
                                  cwd=work,
                                  stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        # steady state: every visitor (and so every organisation) has been seen once
        started = time.perf_counter()
        with httpx.Client(base_url=base, timeout=60) as client:
            for line in warmup_file.read_text(encoding="utf-8").splitlines():
                doc = json.loads(line)
                doc["token_auth"] = key
                client.post("/matomo.php", json=doc).raise_for_status()
        warmup_s = time.perf_counter() - started
        run_wrk(wrk, base + "/healthz", 2, conns, None, [])  # warm-up
        cpu = cpu_seconds(server.pid)
        trivial = run_wrk(wrk, base + "/healthz", seconds, conns, None, [])
        trivial_cpu = cpu_seconds(server.pid) - cpu
        run_wrk(wrk, base, 3, conns, script, [str(requests_file)])  # warm caches
        before = count_hits(db_url)
        cpu = cpu_seconds(server.pid)
        intake = run_wrk(wrk, base, seconds, conns, script, [str(requests_file)])
        intake_cpu = cpu_seconds(server.pid) - cpu
        time.sleep(0.5)
        stored = count_hits(db_url) - before
        rss = peak_rss_mb(server.pid)
        # the baseline again: on a shared machine the speed drifts, and the mean of a run
        # before and one after the intake is the fairer yardstick (the drift is printed)
        cpu = cpu_seconds(server.pid)
        after = run_wrk(wrk, base + "/healthz", seconds, conns, None, [])
        trivial_cpu += cpu_seconds(server.pid) - cpu
    finally:
        server.terminate()
        server.wait(30)
        drop()
    hits_acked = intake["requests"] * hits_per_request
    drift = after["rps"] / trivial["rps"] - 1
    trivial = {"rps": (trivial["rps"] + after["rps"]) / 2,
               "requests": trivial["requests"] + after["requests"],
               "p50": trivial["p50"], "p99": trivial["p99"],
               "non2xx": trivial["non2xx"] + after["non2xx"]}
    return {
        "trivial_rps": trivial["rps"], "drift": drift,
        "trivial_p50": trivial["p50"], "trivial_p99": trivial["p99"],
        "rps": intake["rps"], "hits_per_s": intake["rps"] * hits_per_request,
        "p50": intake["p50"], "p99": intake["p99"], "rss_mb": rss,
        "non2xx": intake["non2xx"] + trivial["non2xx"],
        "stored": stored, "acked_estimate": hits_acked,
        "ratio": intake["rps"] / trivial["rps"],
        "hit_ratio": intake["rps"] * hits_per_request / trivial["rps"],
        "warmup_hits_per_s": VISITORS / warmup_s,
        "trivial_cpu_us": trivial_cpu / trivial["requests"] * 1e6,
        "hit_cpu_us": intake_cpu / (intake["requests"] * hits_per_request) * 1e6,
        "server_cores": intake_cpu / seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--workers", type=int, default=1, help="server worker processes")
    ap.add_argument("--writer", choices=["process", "event_loop"], default="process",
                    help="tracking.writer: where the server writes batches of hits")
    args = ap.parse_args()
    os.environ["LEADBRIDGE_TRACKING__WRITER"] = args.writer
    wrk = ensure_wrk()
    print(f"ingest benchmark: wrk -t{THREADS} -c{args.connections} -d{args.seconds}s; "
          f"{args.workers} server process(es), writer: {args.writer}; "
          f"traffic: 90% single GET / 10% bulk POST of 10, "
          f"20% bots, {VISITORS:,} visitors from 2,000 companies + ISPs + hosting", flush=True)
    header = (f"{'backend':<11}{'trivial req/s':>14}{'drift':>7}{'intake req/s':>14}"
              f"{'hits/s':>10}"
              f"{'p50 ms':>9}{'p99 ms':>9}{'peak MB':>9}{'req ratio':>10}{'hit ratio':>10}"
              f"{'stored':>10}{'non-2xx':>9}{'cold hits/s':>12}{'CPU µs/req':>11}"
              f"{'CPU µs/hit':>11}{'cores':>6}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="lb-bench-") as tmp:
        for backend in args.backends.split(","):
            work = Path(tmp) / backend
            work.mkdir()
            results[backend] = bench_backend(backend, wrk, args.seconds, args.connections, work,
                                             args.workers)
    print(header)
    for backend, r in results.items():
        print(f"{backend:<11}{r['trivial_rps']:>14,.0f}{r['drift']:>+7.0%}{r['rps']:>14,.0f}"
              f"{r['hits_per_s']:>10,.0f}"
              f"{r['p50']:>9.2f}{r['p99']:>9.2f}{r['rss_mb']:>9.0f}{r['ratio']:>10.0%}"
              f"{r['hit_ratio']:>10.0%}{int(r['stored']):>10,}{int(r['non2xx']):>9}"
              f"{r['warmup_hits_per_s']:>12,.0f}{r['trivial_cpu_us']:>11.0f}"
              f"{r['hit_cpu_us']:>11.0f}{r['server_cores']:>6.2f}")
    print("trivial req/s = /healthz on the same server, the mean of a run before and one after "
          "the intake run; drift = after ÷ before - 1.\n"
          "req ratio = intake requests/s ÷ trivial /healthz requests/s on the same server; "
          "hit ratio = intake hits/s ÷ the same trivial rate (target ≥ 40%).\n"
          "stored = rows in hits after the run (every 2xx is committed); cold hits/s = the "
          "warm-up, where every visitor and organisation is new.\n"
          "CPU µs/req = the server's CPU time per trivial request; CPU µs/hit = its CPU time per "
          "stored hit during the intake run; cores = the server's CPU time ÷ the intake run's "
          "length.")


if __name__ == "__main__":
    main()
