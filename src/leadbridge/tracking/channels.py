"""Which marketing channel brought a hit: from its campaign parameters and referrer."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from urllib.parse import urlsplit

DIRECT = "direct"
ORGANIC_SEARCH = "organic_search"
PAID_SEARCH = "paid_search"
EMAIL = "email"
SOCIAL = "social"
REFERRAL = "referral"
CAMPAIGN = "campaign"
INTERNAL = "internal"
CHANNELS = (DIRECT, ORGANIC_SEARCH, PAID_SEARCH, EMAIL, SOCIAL, REFERRAL, CAMPAIGN)

_SEARCH_ENGINES = (
    "google.", "bing.", "duckduckgo.", "yahoo.", "baidu.", "yandex.", "ecosia.", "qwant.",
    "startpage.", "search.brave.", "naver.", "seznam.", "ask.com",
)
_SOCIAL = (
    "facebook.", "fb.com", "linkedin.", "lnkd.in", "twitter.", "t.co", "x.com", "instagram.",
    "youtube.", "youtu.be", "reddit.", "pinterest.", "tiktok.", "xing.", "mastodon.",
    "threads.net", "bsky.app",
)
_WEBMAIL = ("mail.google.", "outlook.live.", "outlook.office", "mail.yahoo.", "webmail.")
_PAID_MEDIUMS = {"cpc", "ppc", "paid", "paidsearch", "paid_search", "sem", "cpm", "display"}
_EMAIL_MEDIUMS = {"email", "e-mail", "newsletter", "mail"}
_SOCIAL_MEDIUMS = {"social", "social-network", "social_media", "sm"}


def _host_matches(host: str, needles: tuple[str, ...]) -> bool:
    return any(host.startswith(n) or ("." + n) in host or host == n.rstrip(".") for n in needles)


def classify_channel(
    *,
    referrer: str | None,
    page_host: str,
    campaign_name: str | None,
    campaign_medium: str | None,
    campaign_source: str | None = None,
    click_id: bool = False,
) -> str:
    """The channel of a hit; `internal` when the referrer is the site itself."""
    medium = (campaign_medium or "").strip().lower()
    if click_id or medium in _PAID_MEDIUMS:
        return PAID_SEARCH
    if medium in _EMAIL_MEDIUMS:
        return EMAIL
    if medium in _SOCIAL_MEDIUMS:
        return SOCIAL
    if campaign_name or campaign_source or medium:
        return CAMPAIGN
    if not referrer:
        return DIRECT
    return _referrer_channel(referrer, page_host)


@lru_cache(maxsize=50_000)
def _referrer_channel(referrer: str, page_host: str) -> str:
    host = (urlsplit(referrer).hostname or "").lower()
    if not host:
        return DIRECT
    if host == page_host.lower():
        return INTERNAL
    if _host_matches(host, _WEBMAIL):
        return EMAIL
    if _host_matches(host, _SEARCH_ENGINES):
        return ORGANIC_SEARCH
    if _host_matches(host, _SOCIAL):
        return SOCIAL
    return REFERRAL


# -- sources of visits (attribution) ---------------------------------------------------------

NO_SOURCE = "(none)"  # the source and campaign of direct visits, and of visits without them
# a visit ends after this long without a hit, as web analytics tools count it
VISIT_GAP = timedelta(minutes=30)
VISIT_STARTERS = frozenset(CHANNELS) - {DIRECT}  # channels that name where a visit came from


def starts_visit(channel: str | None) -> bool:
    """Whether a hit of this channel names a marketing source (so it can start a new visit):
    campaign parameters or an outside referrer. Direct and internal hits name none."""
    return channel in VISIT_STARTERS


def visit_source(channel: str | None, referrer: str | None, campaign_source: str | None) -> str:
    """Who sent a visit: the campaign's `utm_source` (or Matomo's equivalents) when the hit
    carries one, else the referrer's host without `www.`, else `(none)` (direct)."""
    if campaign_source and campaign_source.strip():
        return campaign_source.strip().lower()[:300]
    if referrer and starts_visit(channel):
        return _referrer_host(referrer) or NO_SOURCE
    return NO_SOURCE


@lru_cache(maxsize=50_000)
def _referrer_host(referrer: str) -> str:
    try:
        host = (urlsplit(referrer).hostname or "").lower()
    except ValueError:  # a malformed URL (an unclosed IPv6 bracket) names no host
        return ""
    return host[4:] if host.startswith("www.") else host
