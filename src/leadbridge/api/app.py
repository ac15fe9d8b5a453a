"""The ASGI application: tracking routes (plain Starlette, the hot path), the REST API, pages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.routing import request_response
from starlette.types import Receive, Scope, Send

from leadbridge import __version__
from leadbridge.config import Settings
from leadbridge.conversions.dropfolder import run_poller
from leadbridge.errors import ConnectionBusy, CrmError, InputError, NotFound, StoreError
from leadbridge.hub import Hub
from leadbridge.jobs import Jobs, open_jobs, schedule_sync
from leadbridge.jobs.triggers import push_soon
from leadbridge.privacy.retention import apply_retention
from leadbridge.redact import install_redaction
from leadbridge.tracking.http import TrackingEndpoints

log = logging.getLogger(__name__)


async def _daily_upkeep(hub: Hub) -> None:
    """Raw-hit retention, once at start and then every day, off the event loop."""
    days = hub.settings.privacy.raw_hit_retention_days
    while days is not None:
        try:
            removed = await asyncio.to_thread(apply_retention, hub.engine, days, hub.now())
            if removed:
                log.info("retention: %d hits older than %d days deleted", removed, days)
        except Exception:
            log.exception("retention failed; it is tried again tomorrow")
        await asyncio.sleep(86_400)


def _start_jobs(hub: Hub) -> tuple[Jobs, asyncio.Task[None] | None]:
    """The job runner for the hub's database (in-process on SQLite, procrastinate on
    PostgreSQL): sync cycles every `sync.interval_minutes`, and a sync soon after a new
    Website Visitor or a band change, asked for inside the intake batch's transaction. The
    runner works in this process unless `jobs.run_in_serve` is off (workers do it)."""
    settings = hub.settings
    jobs = open_jobs(hub.engine, settings)
    schedule_sync(jobs, settings)
    push_soon(hub.commit.writer, jobs, settings)
    if not settings.jobs.run_in_serve:
        return jobs, None
    return jobs, asyncio.create_task(jobs.run(concurrency=settings.jobs.concurrency),
                                     name="jobs")


class HubApp:
    """The ASGI entry point: tracking requests go straight to their thin handlers; everything
    else (the API, pages, the lifespan) to FastAPI. Keeps the hot path free of the API's
    middleware stack."""

    def __init__(self, api: FastAPI, tracking: TrackingEndpoints) -> None:
        self.api = api
        self.state = api.state
        self.fast = {(path, method): request_response(endpoint)
                     for path, methods, endpoint in tracking.endpoints() for method in methods}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = self.fast.get((scope["path"], scope["method"]))
            if handler is not None:
                await handler(scope, receive, send)
                return
        await self.api(scope, receive, send)


def create_app(settings: Settings, hub: Hub | None = None) -> HubApp:
    """Build the app; the hub (database, group commit) opens with the app's lifespan."""
    install_redaction()
    the_hub = hub or Hub(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        the_hub.start()
        upkeep = asyncio.create_task(_daily_upkeep(the_hub))
        app.state.jobs, work = _start_jobs(the_hub)
        drop = (asyncio.create_task(run_poller(the_hub.engine, the_hub.settings))
                if the_hub.settings.conversions.drop.location else None)
        try:
            yield
        finally:
            upkeep.cancel()
            if drop is not None:
                drop.cancel()
            if work is not None:
                work.cancel()  # running jobs finish; none is started any more
                with contextlib.suppress(asyncio.CancelledError):
                    await work
            await the_hub.aclose_intake()

    app = FastAPI(title="LeadBridge", version=__version__, lifespan=lifespan,
                  description="Website visitors, hits, contacts and scores; the Matomo-compatible "
                              "tracking endpoint is /matomo.php.")
    app.state.hub = the_hub
    tracking = TrackingEndpoints(the_hub)
    for route in tracking.routes():  # documented and reachable through FastAPI too
        app.router.routes.append(route)

    from leadbridge.api.routes import include_routes
    include_routes(app)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"error": exc.reason, "detail": str(exc)}, status_code=400)

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"error": "store_unavailable", "detail": str(exc)}, status_code=503,
                            headers={"Retry-After": "5"})

    @app.exception_handler(CrmError)
    async def _crm_error(request: Request, exc: CrmError) -> JSONResponse:
        if isinstance(exc, ConnectionBusy):
            return JSONResponse({"error": "connection_busy", "detail": str(exc)},
                                status_code=409, headers={"Retry-After": "60"})
        return JSONResponse({"error": "crm_error", "detail": str(exc)}, status_code=502)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"error": "not_found", "detail": str(exc)}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse({"error": "invalid", "detail": detail}, status_code=422)

    return HubApp(app, tracking)


def app_from_settings() -> HubApp:
    """Factory for server worker processes: each reads the settings and opens its own hub."""
    from leadbridge.config import load_settings
    from leadbridge.gctune import settle_server

    app = create_app(load_settings())
    settle_server()
    return app
