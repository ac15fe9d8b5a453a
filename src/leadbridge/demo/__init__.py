"""The demo that `make run` starts: a site, a key, known companies, and sample traffic sent
through the real tracking endpoint over HTTP."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import Engine, update

from leadbridge.apikeys import create_key
from leadbridge.config import EventRuleConfig, PageRuleConfig, Settings
from leadbridge.identify.enrichment import import_companies
from leadbridge.scoring.ruleset import replace_stored_rules, stored_page_rules
from leadbridge.sites import add_site, list_sites
from leadbridge.store.tables import api_keys

HERE = Path(__file__).parent
DEMO_HOST = "www.demo-shop.example"
DEMO_KEY_NAME = "demo"

PAGES = [
    ("/", "Home"), ("/pricing", "Pricing"), ("/product/tour", "Product tour"),
    ("/blog/visitor-identification", "Blog: visitor identification"),
    ("/careers", "Careers"), ("/contact", "Contact us"), ("/docs/getting-started", "Docs"),
]
RULES = [
    PageRuleConfig(pattern="/pricing*", name="Pricing", category="pricing", score=15),
    PageRuleConfig(pattern="/contact*", name="Contact us", category="contact", score=25),
    PageRuleConfig(pattern="/product/*", name="Product", category="product", score=8),
    PageRuleConfig(pattern="/blog/*", name="Blog", category="content", score=2),
    PageRuleConfig(pattern="/careers*", name="Careers", category="careers", score=-5),
]
EVENTS = [EventRuleConfig(category="form", action="submit", label="Form submitted", score=30),
          EventRuleConfig(category="download", action="*", label="Download", score=10)]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
]
BOT = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"


@dataclass(frozen=True, slots=True)
class Demo:
    site_id: int
    api_key: str


def demo_settings(settings: Settings) -> Settings:
    """The settings with the demo's IP ranges when none are configured."""
    if settings.identify.ip_ranges_csv is None:
        identify = settings.identify.model_copy(update={"ip_ranges_csv": HERE / "ranges.csv"})
        return settings.model_copy(update={"identify": identify})
    return settings


def prepare(engine: Engine) -> Demo:
    """Create the demo site, rules and company data once; a fresh demo key every start."""
    with engine.begin() as conn:
        site = next((s for s in list_sites(conn) if DEMO_HOST in s.hosts), None)
        if site is None:
            site = add_site(conn, "Demo shop", [DEMO_HOST])
        if not stored_page_rules(conn):
            replace_stored_rules(conn, RULES, EVENTS)
        import_companies(conn, HERE / "companies.csv")
        conn.execute(update(api_keys).where(api_keys.c.name == DEMO_KEY_NAME,
                                            api_keys.c.revoked_at.is_(None))
                     .values(revoked_at=datetime.now(UTC)))
        _, clear = create_key(conn, DEMO_KEY_NAME)
    return Demo(site.id, clear)


def send_traffic(base_url: str, demo: Demo, visits: int = 60, seed: int = 7) -> int:
    """Send sample visits through `/matomo.php` (bulk and single requests); returns hits sent."""
    rnd = random.Random(seed)
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=base_url, timeout=10) as client:
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the hub did not answer at {base_url}")
            time.sleep(0.2)
        sent = 0
        prefixes = ["203.0.113.", "203.0.113.", "203.0.113.", "198.51.100.", "192.0.2."]
        for visit in range(visits):
            ip = rnd.choice(prefixes) + str(rnd.randrange(1, 120))
            vid = f"{rnd.getrandbits(64):016x}"
            ua = BOT if visit % 10 == 9 else rnd.choice(AGENTS)
            now = int(time.time()) - rnd.randrange(0, 20 * 86400)
            requests = []
            for n, (path, title) in enumerate(rnd.sample(PAGES, rnd.randrange(1, 5))):
                q = httpx.QueryParams({
                    "idsite": demo.site_id, "rec": 1, "url": f"https://{DEMO_HOST}{path}"
                    + ("?utm_source=newsletter&utm_medium=email&utm_campaign=autumn"
                       if visit % 4 == 0 and n == 0 else ""),
                    "action_name": title, "_id": vid, "cip": ip, "cdt": now + 40 * n,
                    "ua": ua, "urlref": "https://www.google.com/" if n == 0 and visit % 3 else "",
                })
                requests.append(f"?{q}")
            if len(requests) > 1:
                client.post("/matomo.php", json={"requests": requests,
                                                 "token_auth": demo.api_key}).raise_for_status()
            else:
                client.get("/matomo.php" + requests[0] + f"&token_auth={demo.api_key}"
                           ).raise_for_status()
            sent += len(requests)
    return sent
