"""The Matomo HTTP Tracking API: parameters -> TrackingRequest.

Existing Matomo trackers (JavaScript, PHP, Python, mobile SDKs) send to `/matomo.php` unchanged.
Parameters that need authentication (`cip`, and `cdt` older than 24 hours, as in Matomo) are
honoured only with a `token_auth` that is a hub API key; the caller checks it and passes
`authenticated`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from urllib.parse import parse_qsl, urlsplit

from leadbridge.caching import ShortKeyCache
from leadbridge.errors import InputError
from leadbridge.tracking.request import EVENT, PAGEVIEW, PING, TrackingRequest

_HEX16 = re.compile(r"^[0-9a-fA-F]{16}$")
_RES = re.compile(r"^\d{1,5}x\d{1,5}$")
MAX_URL = 4096
MAX_TEXT = 1024
UNAUTHENTICATED_CDT_WINDOW = timedelta(hours=24)

_CAMPAIGN_KEYS = {
    "name": ("utm_campaign", "mtm_campaign", "pk_campaign", "mtm_cmp", "pk_cpn"),
    "source": ("utm_source", "mtm_source", "pk_source"),
    "medium": ("utm_medium", "mtm_medium", "pk_medium"),
    "keyword": ("utm_term", "mtm_keyword", "pk_keyword", "pk_kwd", "mtm_kwd"),
    "content": ("utm_content", "mtm_content", "pk_content"),
}
_CLICK_IDS = ("gclid", "msclkid", "gbraid", "wbraid", "dclid")
CONTACT_TOKEN_PARAM = "lb_ct"
OPT_OUT_PARAM = "lb_optout"


def _text(params: Mapping[str, str], name: str, limit: int = MAX_TEXT) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if len(value) > limit:
        raise InputError(f"parameter {name} is longer than {limit} characters")
    return value


def _int(params: Mapping[str, str], name: str, lo: int, hi: int) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"parameter {name}={raw[:40]!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise InputError(f"parameter {name}={value} is outside {lo}..{hi}")
    return value


def parse_site_id(raw: str | None) -> int:
    if raw is None or raw == "":
        raise InputError("parameter idsite is required")
    try:
        site_id = int(raw)
    except ValueError:
        raise InputError(f"parameter idsite={raw[:40]!r} is not a site id") from None
    if site_id <= 0:
        raise InputError(f"parameter idsite={site_id} is not a site id")
    return site_id


def _split(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.query


# scheme, host name and query of a URL: a site has few pages, each parsed once
_url_parts = ShortKeyCache(_split, maxsize=20_000)


def url_host(url: str) -> str:
    """The host name of a URL that `parse_http_url` accepted."""
    return _url_parts(url)[1]


def parse_http_url(raw: str, name: str) -> str:
    if len(raw) > MAX_URL:
        raise InputError(f"parameter {name} is longer than {MAX_URL} characters")
    try:
        scheme, host, _ = _url_parts(raw)
    except ValueError as exc:
        raise InputError(f"parameter {name} is not a URL: {exc}") from None
    if scheme not in ("http", "https") or not host:
        raise InputError(f"parameter {name}={raw[:80]!r} is not an http(s) URL with a host")
    return raw


def parse_cdt(raw: str) -> datetime:
    """`cdt` is a UNIX timestamp or `YYYY-MM-DD HH:MM:SS` in UTC."""
    try:
        if re.fullmatch(r"\d{9,11}(\.\d+)?", raw):
            return datetime.fromtimestamp(float(raw), UTC)
        return datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        raise InputError(
            f"parameter cdt={raw[:40]!r} is neither a UNIX timestamp nor 'YYYY-MM-DD HH:MM:SS'"
        ) from None


def campaign_from_url(url: str) -> Mapping[str, str]:
    """utm_*, mtm_* and pk_* campaign parameters (and click ids) found in a page URL."""
    query = _url_parts(url)[2]
    if not query:
        return _NO_CAMPAIGN
    return _campaign_of_query(query)


_NO_CAMPAIGN: Mapping[str, str] = MappingProxyType({})


def _campaign(query: str) -> Mapping[str, str]:
    q = dict(parse_qsl(query, keep_blank_values=False))
    found: dict[str, str] = {}
    for field, keys in _CAMPAIGN_KEYS.items():
        for key in keys:
            if key in q:
                found[field] = q[key][:300]
                break
    if any(k in q for k in _CLICK_IDS):
        found["click_id"] = "1"
    if CONTACT_TOKEN_PARAM in q:
        found["contact_token"] = q[CONTACT_TOKEN_PARAM][:500]
    return MappingProxyType(found)  # shared by every hit with this query: read-only


_campaign_of_query = ShortKeyCache(_campaign, maxsize=20_000)


def parse_matomo(
    params: Mapping[str, str],
    *,
    remote_ip: str | None,
    user_agent: str,
    accept_language: str | None,
    authenticated: bool,
    now: datetime,
) -> TrackingRequest:
    """Validate Matomo parameters; InputError names the first parameter that is wrong."""
    site_id = parse_site_id(params.get("idsite"))
    if params.get("rec") != "1":
        raise InputError("parameter rec=1 is required (Matomo records only requests with rec=1)")
    raw_url = params.get("url")
    if not raw_url:
        raise InputError("parameter url is required")
    url = parse_http_url(raw_url, "url")

    visitor_key = None
    for name in ("cid", "_id"):
        raw = params.get(name)
        if raw:
            if not _HEX16.match(raw):
                raise InputError(f"parameter {name}={raw[:40]!r} must be 16 hexadecimal characters")
            visitor_key = raw.lower()
            break

    ip = remote_ip
    cip = params.get("cip")
    if cip:
        if not authenticated:
            raise InputError("parameter cip needs token_auth with a valid API key")
        ip = cip

    occurred_at = None
    cdt = params.get("cdt")
    if cdt:
        occurred_at = parse_cdt(cdt)
        if occurred_at > now + timedelta(minutes=5):
            raise InputError(f"parameter cdt={cdt!r} is in the future")
        if not authenticated and now - occurred_at > UNAUTHENTICATED_CDT_WINDOW:
            raise InputError("parameter cdt older than 24 hours needs token_auth with an API key")

    for name, hi in (("h", 23), ("m", 59), ("s", 59)):
        _int(params, name, 0, hi)
    idts = _int(params, "_idts", 0, 2**34)
    _int(params, "_viewts", 0, 2**34)
    res = _text(params, "res", 20)
    if res is not None and not _RES.match(res):
        raise InputError(f"parameter res={res!r} must look like 1280x1024")

    kind = PAGEVIEW
    e_c, e_a = _text(params, "e_c"), _text(params, "e_a")
    e_value = None
    if e_c or e_a:
        if not (e_c and e_a):
            raise InputError("an event needs both e_c (category) and e_a (action)")
        kind = EVENT
        raw_v = params.get("e_v")
        if raw_v:
            try:
                e_value = float(raw_v)
            except ValueError:
                raise InputError(f"parameter e_v={raw_v[:40]!r} is not a number") from None
    elif params.get("ping") == "1":
        kind = PING

    campaign = campaign_from_url(url)
    rcn, rck = _text(params, "_rcn", 300), _text(params, "_rck", 300)
    referrer = params.get("urlref") or None
    if referrer is not None and len(referrer) > MAX_URL:
        raise InputError(f"parameter urlref is longer than {MAX_URL} characters")

    return TrackingRequest(
        site_id=site_id,
        url=url,
        kind=kind,
        action_name=_text(params, "action_name"),
        referrer=referrer,
        visitor_key=visitor_key,
        user_id=_text(params, "uid", 320),
        contact_token=campaign.get("contact_token"),
        user_agent=params.get("ua") or user_agent,
        lang=_text(params, "lang", 100) or accept_language,
        ip=ip,
        occurred_at=occurred_at,
        resolution=res,
        campaign_name=rcn or campaign.get("name"),
        campaign_source=campaign.get("source"),
        campaign_medium=campaign.get("medium"),
        campaign_keyword=rck or campaign.get("keyword"),
        campaign_content=campaign.get("content"),
        click_id="click_id" in campaign,
        event_category=e_c,
        event_action=e_a,
        event_name=_text(params, "e_n"),
        event_value=e_value,
        first_visit_at=datetime.fromtimestamp(idts, UTC) if idts else None,
        opted_out=params.get(OPT_OUT_PARAM) == "1",
        send_image=params.get("send_image") != "0",
    )
