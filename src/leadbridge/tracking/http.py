"""HTTP endpoints of the intake: Matomo (`/matomo.php`, `/piwik.php`), the native JSON API
(`POST /api/v1/hits`) and the email pixel (`/pixel.gif`).

Kept to plain Starlette routes: this is the hot path. A valid Matomo request gets the GIF (or
204 with `send_image=0`) that trackers expect; a malformed one gets a 4xx with a JSON reason.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl

from fast_query_parsers import parse_query_string
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leadbridge.errors import HostNotAllowed, InputError, StoreError, TooLarge, UnknownSite
from leadbridge.tracking.intake import Skipped
from leadbridge.tracking.matomo import parse_matomo, parse_site_id
from leadbridge.tracking.native import NativeHit, native_to_request
from leadbridge.tracking.request import EMAIL_OPEN, TrackingRequest

if TYPE_CHECKING:
    from leadbridge.hub import Hub

Endpoint = Callable[[Request], Awaitable[Response]]
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_GIF_HEADERS = {"Cache-Control": "no-store"}


def _error(status: int, reason: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": reason, "detail": detail}, status_code=status)


def _status_for(exc: InputError) -> int:
    if isinstance(exc, HostNotAllowed):
        return 403
    if isinstance(exc, TooLarge):
        return 413
    return 400


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"request body of {declared} bytes is over the {limit}-byte limit")
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise TooLarge(f"request body is over the {limit}-byte limit")
    return bytes(chunks)


_WANTED = {b"user-agent", b"accept-language", b"x-forwarded-for", b"dnt", b"sec-gpc",
           b"cookie"}


class _Sender(NamedTuple):
    """What a tracking request's headers say, read once for all the hits it carries."""

    ip: str | None  # the visitor's address (see Hub.client_ip)
    user_agent: str
    accept_language: str | None
    dnt: bool  # Do-Not-Track, Global Privacy Control or the opt-out cookie, when honoured


def _sender(request: Request, hub: Hub) -> _Sender:
    found: dict[bytes, str] = {}
    for name, value in request.scope["headers"]:
        name = name.lower()
        if name in _WANTED and name not in found:
            found[name] = value.decode("latin-1")
    dnt = hub.settings.privacy.honour_dnt and (
        found.get(b"dnt") == "1" or found.get(b"sec-gpc") == "1"
        or "lb_optout=1" in found.get(b"cookie", ""))
    client = request.client
    return _Sender(hub.client_ip(client.host if client else None, found.get(b"x-forwarded-for")),
                   found.get(b"user-agent", ""), found.get(b"accept-language"), dnt)


class TrackingEndpoints:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def endpoints(self) -> list[tuple[str, tuple[str, ...], Endpoint]]:
        return [
            ("/matomo.php", ("GET", "POST"), self.matomo),
            ("/piwik.php", ("GET", "POST"), self.matomo),
            ("/api/v1/hits", ("POST",), self.native),
            ("/pixel.gif", ("GET",), self.pixel),
            ("/healthz", ("GET",), self.healthz),
        ]

    def routes(self) -> list[Route]:
        return [Route(path, endpoint, methods=list(methods))
                for path, methods, endpoint in self.endpoints()]

    async def healthz(self, request: Request) -> Response:
        return Response(b"ok", media_type="text/plain")

    # -- Matomo ---------------------------------------------------------------------------

    async def matomo(self, request: Request) -> Response:
        hub = self.hub
        hub.refresh()
        try:
            raw_query = request.scope["query_string"]
            params: dict[str, str] = _form(raw_query, "query string") if raw_query else {}
            if request.method == "POST":
                body = await _read_body(request, hub.settings.tracking.max_body_bytes)
                stripped = body.lstrip()
                if stripped.startswith(b"{"):
                    return await self._bulk(request, stripped)
                if body:
                    params.update(_form(body))
            if not params:
                return _error(400, "invalid", "no tracking parameters: this is the Matomo "
                              "tracking endpoint (send idsite, rec=1 and url)")
            await self._track_one(request, params, params.get("token_auth"))
        except InputError as exc:
            self._count(params, exc)
            return _error(_status_for(exc), exc.reason, str(exc))
        except Skipped:
            pass
        except StoreError as exc:
            return _error(503, "store_unavailable", str(exc))
        if params.get("send_image") == "0":
            return Response(status_code=204)
        return Response(GIF, media_type="image/gif", headers=_GIF_HEADERS)

    def _count(self, params: Mapping[str, str], exc: InputError) -> None:
        if isinstance(exc, (UnknownSite, HostNotAllowed)):
            try:
                site_id = parse_site_id(params.get("idsite"))
            except InputError:
                site_id = 0
            self.hub.commit.count_rejection(site_id, exc.reason)

    async def _track_one(
        self, request: Request, params: Mapping[str, str], token: str | None
    ) -> None:
        sender = _sender(request, self.hub)
        req, now = self._parse(sender, params, token)
        await self._store(sender, req, now)

    async def _store(self, sender: _Sender, req: TrackingRequest, now: Any) -> None:
        try:
            hit = self.hub.intake.prepare(req, now, dnt=sender.dnt)
        except Skipped as skip:
            self.hub.commit.count_rejection(req.site_id, skip.reason)
            raise
        await self.hub.commit.submit(hit)

    async def _bulk(self, request: Request, body: bytes) -> Response:
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"bulk request body is not valid JSON: {exc}") from None
        entries = doc.get("requests") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            raise InputError('bulk request needs {"requests": ["?idsite=..", ...]}')
        limit = self.hub.settings.tracking.max_bulk_requests
        if len(entries) > limit:
            raise TooLarge(f"bulk request holds {len(entries)} requests; the limit is {limit}")
        token = doc.get("token_auth") if isinstance(doc.get("token_auth"), str) else None
        errors: list[dict[str, Any]] = []
        waits: list[tuple[int, asyncio.Future[None]]] = []
        skipped = 0
        sender = _sender(request, self.hub)
        for index, entry in enumerate(entries):
            params: dict[str, str] = {}
            try:
                if not isinstance(entry, str):
                    raise InputError("each bulk entry must be a query string such as "
                                     "'?idsite=1&rec=1&url=...'")
                params = _form(entry.split("?", 1)[1].encode() if "?" in entry else entry.encode())
                req, now = self._parse(sender, params, token or params.get("token_auth"))
                hit = self.hub.intake.prepare(req, now, dnt=sender.dnt)
                waits.append((index, self.hub.commit.submit(hit)))
            except InputError as exc:
                self._count(params, exc)
                errors.append({"index": index, "error": exc.reason, "detail": str(exc)})
            except Skipped as skip:
                skipped += 1
                self.hub.commit.count_rejection(0, skip.reason)
            except StoreError as exc:
                errors.append({"index": index, "error": "store_unavailable", "detail": str(exc)})
        tracked = 0
        for index, fut in waits:
            try:
                await fut
                tracked += 1
            except StoreError as exc:
                errors.append({"index": index, "error": "store_unavailable", "detail": str(exc)})
        errors.sort(key=lambda e: int(e["index"]))
        return JSONResponse({
            "status": "success",
            "tracked": tracked,
            "skipped": skipped,
            "invalid": len(errors),
            "invalid_indices": [e["index"] for e in errors],
            "errors": errors,
        })

    def _parse(
        self, sender: _Sender, params: Mapping[str, str], token: str | None
    ) -> tuple[TrackingRequest, Any]:
        hub = self.hub
        authenticated = bool(token) and hub.api_key(token or "") is not None
        if token and not authenticated and ("cip" in params or "cdt" in params):
            raise InputError("token_auth is not a valid API key")
        now = hub.now()
        req = parse_matomo(
            params,
            remote_ip=sender.ip,
            user_agent=sender.user_agent,
            accept_language=sender.accept_language,
            authenticated=authenticated,
            now=now,
        )
        return req, now

    # -- native JSON ----------------------------------------------------------------------

    async def native(self, request: Request) -> Response:
        hub = self.hub
        hub.refresh()
        try:
            body = await _read_body(request, hub.settings.tracking.max_body_bytes)
            try:
                doc = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise InputError(f"body is not valid JSON: {exc}") from None
        except InputError as exc:
            return _error(_status_for(exc), exc.reason, str(exc))
        single = isinstance(doc, dict) and "hits" not in doc
        entries = [doc] if single else (doc.get("hits") if isinstance(doc, dict) else doc)
        if not isinstance(entries, list):
            return _error(400, "invalid", 'send one hit object, a list, or {"hits": [...]}')
        limit = hub.settings.tracking.max_bulk_requests
        if len(entries) > limit:
            return _error(413, "too_large", f"{len(entries)} hits; the limit is {limit}")
        auth = request.headers.get("authorization", "")
        key = hub.api_key(auth[7:]) if auth.lower().startswith("bearer ") else None
        sender = _sender(request, hub)
        results: list[dict[str, Any]] = []
        waits: list[tuple[int, asyncio.Future[None]]] = []
        now = hub.now()
        for index, entry in enumerate(entries):
            try:
                hit = NativeHit.model_validate(entry)
                req = native_to_request(hit, peer=sender.ip, user_agent=sender.user_agent,
                                        authenticated=key is not None, now=now)
                prepared = hub.intake.prepare(req, now, dnt=sender.dnt)
                waits.append((index, hub.commit.submit(prepared)))
                results.append({"index": index, "status": "accepted"})
            except ValidationError as exc:
                results.append({"index": index, "status": "rejected", "error": "invalid",
                                "detail": _pydantic_message(exc)})
            except InputError as exc:
                if isinstance(exc, (UnknownSite, HostNotAllowed)) and isinstance(entry, dict):
                    sid = entry.get("site_id")
                    hub.commit.count_rejection(sid if isinstance(sid, int) else 0, exc.reason)
                results.append({"index": index, "status": "rejected", "error": exc.reason,
                                "detail": str(exc)})
            except Skipped as skip:
                results.append({"index": index, "status": "skipped", "reason": skip.reason})
            except StoreError as exc:
                results.append({"index": index, "status": "rejected",
                                "error": "store_unavailable", "detail": str(exc)})
        for index, fut in waits:
            try:
                await fut
                results[index]["status"] = "stored"
            except StoreError as exc:
                results[index] = {"index": index, "status": "rejected",
                                  "error": "store_unavailable", "detail": str(exc)}
        stored = sum(1 for r in results if r["status"] == "stored")
        rejected = sum(1 for r in results if r["status"] == "rejected")
        if single:
            r = results[0]
            code = 201 if r["status"] == "stored" else 200 if r["status"] == "skipped" else (
                403 if r.get("error") == "host_not_allowed" else 400)
            return JSONResponse(r, status_code=code)
        return JSONResponse({"stored": stored, "rejected": rejected,
                             "skipped": len(results) - stored - rejected, "results": results},
                            status_code=200)

    # -- email pixel ----------------------------------------------------------------------

    async def pixel(self, request: Request) -> Response:
        """`/pixel.gif?idsite=1&lb_ct=<token>&c=<campaign>`: an email open, always a GIF."""
        hub = self.hub
        hub.refresh()
        q = request.query_params
        try:
            site_id = parse_site_id(q.get("idsite"))
            site = hub.sites.get(site_id)
            if site is None:
                raise UnknownSite(f"site {site_id} is not a known site")
            token = q.get("lb_ct")
            if not token:
                raise InputError("parameter lb_ct (the recipient's contact token) is required")
            campaign = (q.get("c") or "")[:300] or None
            host = next((h for h in site.hosts if not h.startswith("*.")), site.hosts[0][2:])
            sender = _sender(request, hub)
            req = TrackingRequest(
                site_id=site_id, url=f"https://{host}/", kind=EMAIL_OPEN,
                contact_token=token, user_agent=sender.user_agent, ip=sender.ip,
                campaign_name=campaign, campaign_medium="email",
                event_category="email", event_action="open", event_name=campaign,
                action_name=f"Email opened: {campaign}" if campaign else "Email opened",
            )
            now = hub.now()
            await hub.commit.submit(hub.intake.prepare(req, now))
        except InputError as exc:
            self._count(q, exc)
            return _error(_status_for(exc), exc.reason, str(exc))
        except Skipped:
            pass
        except StoreError as exc:
            return _error(503, "store_unavailable", str(exc))
        return Response(GIF, media_type="image/gif", headers=_GIF_HEADERS)


def _form(body: bytes, what: str = "request body") -> dict[str, str]:
    """Parse a query string or form body (the Rust parser; the standard library's for the
    odd input it leaves undecoded, such as percent-escapes that are not UTF-8)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{what} is not UTF-8") from None
    pairs = parse_query_string(body, "&")
    if any("=" in key or "%" in key for key, _ in pairs):
        pairs = parse_qsl(text, keep_blank_values=True)
    return dict(pairs)


def _pydantic_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'hit'}: {e['msg']}" for e in exc.errors()
    )
