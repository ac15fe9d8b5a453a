"""Rate-limit headers of each family, well-formed and malformed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from leadbridge.connectors.bottlecrm import BottleCRMClient
from leadbridge.connectors.ratelimits import RateInfo, parse_rate_headers, retry_after_moment

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)


def windows(info: RateInfo) -> dict[str, tuple[float, float | None, datetime | None]]:
    return {w.name: (w.remaining, w.limit, w.reset_at) for w in info.windows}


def test_no_rate_headers_give_an_empty_answer() -> None:
    info = parse_rate_headers({"Content-Type": "application/json"}, NOW)
    assert not info and info.windows == () and info.blocked_until(timedelta(60)) is None


def test_x_ratelimit_with_seconds_or_a_unix_time_as_reset() -> None:
    info = parse_rate_headers({"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "7",
                               "X-RateLimit-Reset": "30"}, NOW)
    assert windows(info) == {"x-ratelimit": (7, 100, NOW + timedelta(seconds=30))}
    assert info.blocked_until(timedelta(minutes=1)) is None  # calls are left
    epoch = int((NOW + timedelta(minutes=10)).timestamp())
    spent = parse_rate_headers({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(epoch)},
                               NOW)
    assert spent.blocked_until(timedelta(minutes=1)) == NOW + timedelta(minutes=10)


@pytest.mark.parametrize(("headers", "problem"), [
    ({"X-RateLimit-Remaining": "lots"}, "X-RateLimit-Remaining: 'lots' is not a number"),
    ({"X-RateLimit-Remaining": "-3"}, "X-RateLimit-Remaining: '-3' is not a number"),
    ({"X-RateLimit-Remaining": "nan"}, "X-RateLimit-Remaining: 'nan' is not a number"),
    ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "soon"},
     "X-RateLimit-Reset: 'soon' is not a number"),
    ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "9999999999999"},
     "X-RateLimit-Reset: 1e+13 is too far in the future"),
])
def test_malformed_x_ratelimit_values_are_named_and_left_out(headers: dict[str, str],
                                                            problem: str) -> None:
    info = parse_rate_headers(headers, NOW)
    assert any(p.startswith(problem) for p in info.problems), info.problems
    for window in info.windows:  # whatever was readable is kept; nothing made up
        assert window.reset_at is None


def test_a_spent_window_without_a_reset_blocks_for_the_fallback() -> None:
    info = parse_rate_headers({"X-RateLimit-Remaining": "0"}, NOW)
    assert info.blocked_until(timedelta(minutes=5)) == NOW + timedelta(minutes=5)


def test_ietf_draft_separate_headers_and_structured_fields() -> None:
    old = parse_rate_headers({"RateLimit-Limit": "100, 100;w=60", "RateLimit-Remaining": "0",
                              "RateLimit-Reset": "42"}, NOW)
    assert windows(old) == {"ratelimit": (0, 100, NOW + timedelta(seconds=42))}
    assert old.blocked_until(timedelta(minutes=1)) == NOW + timedelta(seconds=42)
    new = parse_rate_headers({"RateLimit": '"default";r=50;t=30',
                              "RateLimit-Policy": '"default";q=100;w=60'}, NOW)
    assert windows(new) == {"ratelimit": (50, 100, NOW + timedelta(seconds=30))}
    legacy = parse_rate_headers({"RateLimit": "limit=10, remaining=0, reset=5"}, NOW)
    assert windows(legacy) == {"ratelimit": (0, 10, NOW + timedelta(seconds=5))}


@pytest.mark.parametrize(("headers", "problem"), [
    ({"RateLimit": '"default";q=100'}, "RateLimit: '\"default\";q=100' has no remaining quota"),
    ({"RateLimit": '"default";r=many;t=3'}, "RateLimit: 'many' is not a number"),
    ({"RateLimit-Remaining": "0", "RateLimit-Limit": "x;w=1"}, "RateLimit-Limit: 'x'"),
])
def test_malformed_ietf_values_are_named(headers: dict[str, str], problem: str) -> None:
    info = parse_rate_headers(headers, NOW)
    assert any(p.startswith(problem) for p in info.problems), info.problems


def test_retry_after_as_seconds_or_http_date_and_malformed() -> None:
    assert retry_after_moment("120", NOW) == NOW + timedelta(seconds=120)
    assert retry_after_moment("Fri, 20 Nov 2026 12:05:00 GMT", NOW) == NOW + timedelta(minutes=5)
    assert retry_after_moment("Fri, 20 Nov 2026 11:00:00 GMT", NOW) == NOW  # in the past: now
    problems: list[str] = []
    assert retry_after_moment("in a bit", NOW, problems) is None
    assert retry_after_moment("99999999999", NOW, problems) is None
    assert retry_after_moment("-5", NOW, problems) is None
    assert len(problems) == 3 and problems[0].startswith("Retry-After: 'in a bit'")
    info = parse_rate_headers({"Retry-After": "30"}, NOW)
    assert info and info.blocked_until(timedelta(minutes=1)) == NOW + timedelta(seconds=30)


def test_hubspot_interval_secondly_and_daily_limits() -> None:
    info = parse_rate_headers({
        "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        "X-HubSpot-RateLimit-Max": "100", "X-HubSpot-RateLimit-Remaining": "97",
        "X-HubSpot-RateLimit-Secondly": "10", "X-HubSpot-RateLimit-Secondly-Remaining": "9",
        "X-HubSpot-RateLimit-Daily": "250000", "X-HubSpot-RateLimit-Daily-Remaining": "0",
    }, NOW)
    midnight = datetime(2026, 11, 21, tzinfo=UTC)
    assert windows(info) == {
        "hubspot-interval": (97, 100, NOW + timedelta(seconds=10)),
        "hubspot-secondly": (9, 10, NOW + timedelta(seconds=1)),
        "hubspot-daily": (0, 250000, midnight),
    }
    assert info.tightest is not None and info.tightest.name == "hubspot-daily"
    assert info.blocked_until(timedelta(minutes=1)) == midnight
    bad = parse_rate_headers({"X-HubSpot-RateLimit-Remaining": "ninety",
                              "X-HubSpot-RateLimit-Interval-Milliseconds": "ten"}, NOW)
    assert bad.windows == () and len(bad.problems) == 2


def test_dataverse_service_protection_headers() -> None:
    info = parse_rate_headers({"x-ms-ratelimit-burst-remaining-xrm-requests": "5,999",
                               "x-ms-ratelimit-time-remaining-xrm-requests": "1,199,999.92"},
                              NOW)
    assert windows(info)["dataverse-requests"][0] == 5999
    assert windows(info)["dataverse-execution-ms"][0] == pytest.approx(1199999.92)
    spent = parse_rate_headers({"x-ms-ratelimit-burst-remaining-xrm-requests": "0",
                                "Retry-After": "37"}, NOW)
    # the window's own guess (5 minutes) is later than Retry-After: the later one holds
    assert spent.blocked_until(timedelta(minutes=1)) == NOW + timedelta(minutes=5)
    bad = parse_rate_headers({"x-ms-ratelimit-burst-remaining-xrm-requests": "1.2.3"}, NOW)
    assert bad.windows == () and "is not a number" in bad.problems[0]


def test_salesforce_api_usage() -> None:
    info = parse_rate_headers({"Sforce-Limit-Info": "api-usage=4990/5000"}, NOW)
    assert windows(info) == {"salesforce-api-usage": (10, 5000, None)}
    over = parse_rate_headers({"Sforce-Limit-Info": "api-usage=5012/5000"}, NOW)
    assert windows(over)["salesforce-api-usage"][0] == 0
    assert over.blocked_until(timedelta(hours=1)) == NOW + timedelta(hours=1)
    bad = parse_rate_headers({"Sforce-Limit-Info": "api-usage=lots"}, NOW)
    assert bad.windows == () and bad.problems == (
        "Sforce-Limit-Info: 'api-usage=lots' has no api-usage=N/M",)


def test_the_bottlecrm_client_keeps_the_rate_headers_of_the_last_answer() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth/login/"):
            return httpx.Response(200, json={"token": "t0k3n"},
                                  headers={"X-RateLimit-Remaining": "0",
                                           "X-RateLimit-Reset": "60"})
        return httpx.Response(429, json={"detail": "slow down"}, headers={"Retry-After": "9"})

    with BottleCRMClient("http://crm.test", "a@example.com", "pw",
                         transport=httpx.MockTransport(answer)) as client:
        client.login()
        assert client.rate_info is not None
        assert [(w.name, w.remaining) for w in client.rate_info.windows] == [("x-ratelimit", 0)]
        with pytest.raises(Exception, match="Try again later"):
            client.get("contacts", 1)
        assert client.rate_info.retry_at is not None and client.rate_info.windows == ()
