"""The Matomo tracking endpoint, through the whole app, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from starlette.testclient import TestClient

from leadbridge.hub import Hub
from leadbridge.views.hits import list_hits
from support import BOT_UA, BROWSER_UA, rows, scalar, track, wait_for

GIF_MAGIC = b"GIF89a"


def test_page_view_is_stored_with_its_analytics(client: TestClient, site_id: int, hub: Hub) -> None:
    r = track(client, site_id, "https://www.example.com/pricing?utm_source=news&utm_medium=email"
              "&utm_campaign=autumn", action_name="Pricing", _id="0123456789abcdef",
              res="1920x1080", urlref="https://news.example.net/")
    assert r.status_code == 200
    assert r.content.startswith(GIF_MAGIC) and r.headers["content-type"] == "image/gif"
    [hit] = rows(hub.engine, "SELECT * FROM hits")
    assert hit.url.startswith("https://www.example.com/pricing")
    assert hit.page_title == "Pricing" and hit.kind == "pageview"
    assert hit.campaign_name == "autumn" and hit.campaign_source == "news"
    assert hit.channel == "email"
    assert hit.browser == "Chrome" and hit.os == "Windows" and hit.device == "desktop"
    assert hit.resolution == "1920x1080" and not hit.is_bot
    assert hit.ip_masked == "198.51.0.0"  # 198.51.100.7 with two bytes masked
    assert hit.referrer == "https://news.example.net/"


def test_visit_identifies_the_company_behind_the_ip(client: TestClient, site_id: int,
                                                    hub: Hub) -> None:
    track(client, site_id, "https://www.example.com/")
    [org] = rows(hub.engine, "SELECT * FROM organisations")
    assert org.name == "Testclient Industries" and org.type == "company"
    assert org.hit_count == 1 and org.last_visit_at is not None
    assert scalar(hub.engine, "SELECT organisation_id FROM hits") == org.id


def test_unknown_site_is_rejected_counted_and_not_stored(client: TestClient, site_id: int,
                                                         hub: Hub) -> None:
    r = track(client, 999, "https://www.example.com/")
    assert r.status_code == 400
    assert r.json()["error"] == "unknown_site" and "999" in r.json()["detail"]
    # counters are flushed with the next batch or after a second without hits
    wait_for(lambda: len(rows(hub.engine, "SELECT * FROM intake_rejections")) == 1)
    assert scalar(hub.engine, "SELECT count(*) FROM hits") == 0
    assert rows(hub.engine, "SELECT site_id, reason, count FROM intake_rejections") == [
        (999, "unknown_site", 1)
    ]


def test_host_not_allowed_is_rejected_and_wildcards_allow_subdomains(
    client: TestClient, site_id: int, hub: Hub
) -> None:
    bad = track(client, site_id, "https://evil.example.net/")
    assert bad.status_code == 403 and bad.json()["error"] == "host_not_allowed"
    assert track(client, site_id, "https://shop.example.org/x").status_code == 200
    assert track(client, site_id, "https://example.org/").status_code == 200
    wait_for(lambda: len(rows(hub.engine, "SELECT * FROM intake_rejections")) == 1)
    assert scalar(hub.engine, "SELECT count(*) FROM hits") == 2
    assert scalar(hub.engine, "SELECT count FROM intake_rejections "
                              "WHERE reason = 'host_not_allowed'") == 1


def test_post_form_body_and_piwik_alias_and_send_image_0(client: TestClient, site_id: int,
                                                         hub: Hub) -> None:
    body = f"idsite={site_id}&rec=1&url=https%3A%2F%2Fwww.example.com%2Fa&send_image=0"
    r = client.post("/matomo.php", content=body, headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
        "User-Agent": BROWSER_UA})
    assert r.status_code == 204
    r = client.get("/piwik.php", params={"idsite": site_id, "rec": 1,
                                         "url": "https://www.example.com/b"})
    assert r.status_code == 200
    assert sorted(x.url for x in rows(hub.engine, "SELECT url FROM hits")) == [
        "https://www.example.com/a", "https://www.example.com/b"]


def test_bulk_stores_good_entries_and_reports_bad_ones(client: TestClient, site_id: int,
                                                       hub: Hub) -> None:
    good = f"?idsite={site_id}&rec=1&url=https%3A%2F%2Fwww.example.com%2Fone"
    r = client.post("/matomo.php", json={"requests": [
        good,
        "?idsite=abc&rec=1&url=https%3A%2F%2Fwww.example.com%2F",
        f"?idsite={site_id}&rec=1&url=https%3A%2F%2Fwww.example.com%2Ftwo&_id=nothex",
        42,
        f"?idsite={site_id}&rec=1&url=https%3A%2F%2Fwww.example.com%2Fthree",
    ]}, headers={"User-Agent": BROWSER_UA})
    assert r.status_code == 200
    doc = r.json()
    assert doc["tracked"] == 2 and doc["invalid"] == 3
    assert doc["invalid_indices"] == [1, 2, 3]
    assert "idsite" in doc["errors"][0]["detail"] and "_id" in doc["errors"][1]["detail"]
    assert sorted(x.url for x in rows(hub.engine, "SELECT url FROM hits")) == [
        "https://www.example.com/one", "https://www.example.com/three"]


def test_cip_and_old_cdt_need_a_valid_token(client: TestClient, site_id: int, hub: Hub,
                                            api_key: str) -> None:
    url = "https://www.example.com/"
    r = track(client, site_id, url, cip="203.0.113.9")
    assert r.status_code == 400 and "cip" in r.json()["detail"]
    r = track(client, site_id, url, cip="203.0.113.9", token_auth="lb_wrong")
    assert r.status_code == 400 and "token_auth" in r.json()["detail"]
    old = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")
    r = track(client, site_id, url, cdt=old)
    assert r.status_code == 400 and "24 hours" in r.json()["detail"]
    assert scalar(hub.engine, "SELECT count(*) FROM hits") == 0

    r = track(client, site_id, url, cip="203.0.113.9", cdt=old, token_auth=api_key)
    assert r.status_code == 200
    [hit] = rows(hub.engine, "SELECT h.ip_masked, h.occurred_at, o.name FROM hits h "
                             "JOIN organisations o ON o.id = h.organisation_id")
    assert hit.ip_masked == "203.0.0.0" and hit.name == "Acme Corp"
    assert str(hit.occurred_at).startswith(old[:10])


def test_malformed_requests_get_a_reason_naming_the_parameter(client: TestClient,
                                                              site_id: int, hub: Hub) -> None:
    url = "https://www.example.com/"
    cases = [
        ({"idsite": "x", "rec": "1", "url": url}, "idsite"),
        ({"idsite": str(site_id), "url": url}, "rec"),
        ({"idsite": str(site_id), "rec": "1"}, "url"),
        ({"idsite": str(site_id), "rec": "1", "url": "javascript:alert(1)"}, "url"),
        ({"idsite": str(site_id), "rec": "1", "url": url, "_id": "zz"}, "_id"),
        ({"idsite": str(site_id), "rec": "1", "url": url, "res": "big"}, "res"),
        ({"idsite": str(site_id), "rec": "1", "url": url, "h": "25"}, "h"),
        ({"idsite": str(site_id), "rec": "1", "url": url, "cdt": "yesterday"}, "cdt"),
        ({"idsite": str(site_id), "rec": "1", "url": url, "e_c": "video"}, "e_a"),
        ({"idsite": str(site_id), "rec": "1", "url": url, "e_c": "v", "e_a": "p", "e_v": "x"},
         "e_v"),
        ({"idsite": str(site_id), "rec": "1", "url": url, "action_name": "x" * 5000},
         "action_name"),
    ]
    for params, named in cases:
        r = client.get("/matomo.php", params=params)
        assert r.status_code == 400, params
        assert r.headers["content-type"] == "application/json"
        assert named in r.json()["detail"], (params, r.json())
    assert client.get("/matomo.php").status_code == 400
    assert scalar(hub.engine, "SELECT count(*) FROM hits") == 0


def test_oversize_and_broken_bodies(client: TestClient, site_id: int, hub: Hub) -> None:
    big = "x" * (hub.settings.tracking.max_body_bytes + 10)
    r = client.post("/matomo.php", content=big)
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    r = client.post("/matomo.php", content=b'{"requests": [')
    assert r.status_code == 400 and "JSON" in r.json()["detail"]
    r = client.post("/matomo.php", json={"requests": "?idsite=1"})
    assert r.status_code == 400 and "requests" in r.json()["detail"]
    r = client.post("/matomo.php", content=b"idsite=1&rec=1&url=\xff\xfe")
    assert r.status_code == 400 and "UTF-8" in r.json()["detail"]


def test_bots_are_stored_flagged_and_never_scored(client: TestClient, site_id: int,
                                                  hub: Hub) -> None:
    track(client, site_id, "https://www.example.com/", ua=BOT_UA)
    track(client, site_id, "https://www.example.com/", ua="")
    hits = rows(hub.engine, "SELECT is_bot, score FROM hits")
    assert len(hits) == 2 and all(h.is_bot and h.score == 0 for h in hits)
    assert scalar(hub.engine, "SELECT hit_count FROM organisations") == 0
    assert scalar(hub.engine, "SELECT score_weight FROM organisations") == 0


def test_do_not_track_and_opt_out_are_honoured(client: TestClient, site_id: int,
                                               hub: Hub) -> None:
    r = track(client, site_id, "https://www.example.com/", headers={"DNT": "1"})
    assert r.status_code == 200 and r.content.startswith(GIF_MAGIC)
    r = track(client, site_id, "https://www.example.com/", lb_optout="1")
    assert r.status_code == 200
    r = track(client, site_id, "https://www.example.com/", headers={"Cookie": "lb_optout=1"})
    assert r.status_code == 200
    assert scalar(hub.engine, "SELECT count(*) FROM hits") == 0


def _cdt(t0: datetime, seconds: int) -> str:
    """Matomo's `cdt` for `seconds` after `t0` (a Unix timestamp)."""
    return str(int((t0 + timedelta(seconds=seconds)).timestamp()))


def test_ping_and_next_page_measure_time_on_page(client: TestClient, site_id: int,
                                                 hub: Hub, api_key: str) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    vid = "aaaaaaaaaaaaaaaa"
    track(client, site_id, "https://www.example.com/one", _id=vid, cdt=_cdt(t0, 0))
    track(client, site_id, "https://www.example.com/one", _id=vid, cdt=_cdt(t0, 15), ping="1")
    assert scalar(hub.engine, "SELECT time_on_page FROM hits") == 15
    track(client, site_id, "https://www.example.com/two", _id=vid, cdt=_cdt(t0, 42))
    # the next page, not the ping, says how long the first was read; the last has none
    with hub.engine.connect() as conn:
        got = list_hits(conn).items
    assert [(h.url[-3:], h.time_on_page) for h in got] == [("two", None), ("one", 42)]


def test_a_late_hit_gives_the_page_before_it_its_time(client: TestClient, site_id: int,
                                                      hub: Hub, api_key: str) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=2)
    vid = "bbbbbbbbbbbbbbbb"
    for path, seconds in [("a", 0), ("c", 100), ("b", 30), ("d", 100 + 31 * 60)]:
        track(client, site_id, f"https://www.example.com/{path}", _id=vid,
              cdt=_cdt(t0, seconds), token_auth=api_key)
    with hub.engine.connect() as conn:
        got = {h.url[-1]: h.time_on_page for h in list_hits(conn).items}
    # b arrived after c and still splits a's time; d came after the visit ended
    assert got == {"a": 30, "b": 70, "c": None, "d": None}


def test_browser_last_seen_moves_in_steps_of_a_few_minutes(client: TestClient, site_id: int,
                                                            hub: Hub) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=20)

    def last_seen() -> datetime:
        value = scalar(hub.engine, "SELECT last_seen_at FROM browser_visitors")
        return value if isinstance(value, datetime) else datetime.fromisoformat(value)

    vid = "bbbbbbbbbbbbbbbb"
    for seconds in (0, 60):  # a new browser, then one page view a minute later
        track(client, site_id, "https://www.example.com/a", _id=vid, cdt=_cdt(t0, seconds))
    first = last_seen()
    track(client, site_id, "https://www.example.com/b", _id=vid, cdt=_cdt(t0, 120))
    assert last_seen() == first  # within SEEN_PRECISION of what is stored: not rewritten
    track(client, site_id, "https://www.example.com/c", _id=vid, cdt=_cdt(t0, 60 + 6 * 60))
    assert last_seen() - first >= timedelta(minutes=5)
    assert scalar(hub.engine, "SELECT count(*) FROM hits") == 4


def test_long_urls_are_stored_whole_but_not_remembered(client: TestClient, site_id: int,
                                                       hub: Hub) -> None:
    """URLs past the usual length are parsed each time: sent to fill memory, each would
    otherwise keep an entry in the intake's caches."""
    from leadbridge.tracking import matomo

    caches = [matomo._url_parts, matomo._campaign_of_query, hub.rules.page]
    before = [c.cache_info().currsize for c in caches]
    url = ("https://www.example.com/pricing?utm_source=news&utm_campaign=long&pad="
           + uuid.uuid4().hex + "x" * 2000)  # new to every run: none could be cached
    assert track(client, site_id, url, action_name="Pricing").status_code == 200
    [hit] = rows(hub.engine, "SELECT url, campaign_name, campaign_source FROM hits")
    assert hit == (url, "long", "news")
    assert [c.cache_info().currsize for c in caches] == before
    short = f"https://www.example.com/pricing?utm_campaign=short&n={uuid.uuid4().hex}"
    assert track(client, site_id, short).status_code == 200
    assert all(c.cache_info().currsize > n for c, n in zip(caches, before, strict=True))
