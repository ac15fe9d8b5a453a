"""The hub as people run it: `leadbridge serve` in its own process, spoken to over HTTP."""

from __future__ import annotations

import httpx
from asgi_matomo import MatomoMiddleware
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from support import BROWSER_UA, rows, scalar, wait_for


def test_acknowledged_hits_survive_a_killed_server(live_server, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    site = live_server.cli("sites", "add", "Shop", "--host", "www.example.com")
    live_server.start()
    acked = 0
    with httpx.Client(base_url=live_server.url, headers={"User-Agent": BROWSER_UA}) as http:
        for i in range(300):
            r = http.get("/matomo.php", params={"idsite": site, "rec": 1,
                                                 "url": f"https://www.example.com/p{i}"})
            assert r.status_code == 200
            acked += 1
        bulk = [f"?idsite={site}&rec=1&url=https%3A%2F%2Fwww.example.com%2Fb{i}"
                for i in range(200)]
        assert http.post("/matomo.php", json={"requests": bulk}).json()["tracked"] == 200
        acked += 200
    live_server.kill()  # no graceful shutdown: only what was committed is there
    assert scalar(engine, "SELECT count(*) FROM hits") == acked


def test_a_third_party_matomo_client_tracks_into_the_hub(live_server, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    """asgi-matomo (a Matomo tracking middleware for ASGI apps) sends to the hub unchanged."""
    site = int(live_server.cli("sites", "add", "Docs", "--host", "testserver"))
    key = live_server.cli("apikeys", "create", "middleware")
    live_server.start()

    async def page(request):  # type: ignore[no-untyped-def]
        return PlainTextResponse("hello")

    website = Starlette(routes=[Route("/pricing", page), Route("/about", page)])
    tracked = MatomoMiddleware(website, matomo_url=f"{live_server.url}/matomo.php",
                               idsite=site, access_token=key, assume_https=True)
    with TestClient(tracked) as browser:
        for path in ("/pricing", "/about", "/pricing"):
            r = browser.get(path, headers={"User-Agent": BROWSER_UA,
                                           "X-Forwarded-For": "203.0.113.50"})
            assert r.text == "hello"
    wait_for(lambda: scalar(engine, "SELECT count(*) FROM hits") == 3)
    got = rows(engine, "SELECT h.url, o.name FROM hits h "
                       "LEFT JOIN organisations o ON o.id = h.organisation_id ORDER BY h.id")
    assert [g.url for g in got] == ["https://testserver:80/pricing", "https://testserver:80/about",
                                    "https://testserver:80/pricing"]
    # the middleware sends the visitor's address as cip with token_auth: Acme's range
    assert {g.name for g in got} == {"Acme Corp"}
