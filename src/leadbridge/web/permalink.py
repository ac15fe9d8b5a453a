"""The Website Visitor permalink: `GET /p/{token}`, one organisation's page for salespeople.

The link goes into CRM records, so it works without an API key: the token (32 random bytes)
is the secret. The page says the same as the API (fields, score, band, recent hits) and asks
search engines and browsers not to index it or pass it on as a referrer.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined

from leadbridge import __version__
from leadbridge.hub import Hub
from leadbridge.views.context import ViewContext
from leadbridge.views.hits import HitFilter, recent_hits
from leadbridge.views.website_visitors import survivor_token, website_visitor_by_token

router = APIRouter(include_in_schema=False)

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
PAGE_HEADERS = {
    "X-Robots-Tag": "noindex, nofollow",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private, no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}


def duration(seconds: int | None) -> str:
    """Time on page for people: `45 s`, `3 min 05 s`, `1 h 02 min`; blank when unknown."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def moment(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


_env = Environment(
    loader=PackageLoader("leadbridge.web", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["duration"] = duration
_env.filters["moment"] = moment


def _not_found() -> HTMLResponse:
    html = _env.get_template("not_found.html").render(version=__version__)
    return HTMLResponse(html, status_code=404, headers=PAGE_HEADERS)


@router.get("/p/{token}", response_class=HTMLResponse)
def website_visitor_page(
    token: str, request: Request, hits_limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """One Website Visitor's page; 404 for unknown tokens, ISPs, blocked organisations."""
    if not _TOKEN.match(token):
        return _not_found()
    hub: Hub = request.app.state.hub
    hub.refresh()
    ctx = ViewContext.of(hub.settings, hub.decay)
    with hub.engine.connect() as conn:
        visitor = website_visitor_by_token(conn, ctx, token)
        if visitor is None:
            survivor = survivor_token(conn, token)
            if survivor is not None:  # merged: old links in CRM records lead to the survivor
                return RedirectResponse(f"/p/{survivor}", status_code=308, headers=PAGE_HEADERS)
            return _not_found()
        hits = recent_hits(conn, HitFilter(website_visitor_id=visitor.id), hits_limit)
    html = _env.get_template("website_visitor.html").render(
        visitor=visitor, hits=hits, now=ctx.now, version=__version__,
    )
    return HTMLResponse(html, headers=PAGE_HEADERS)
