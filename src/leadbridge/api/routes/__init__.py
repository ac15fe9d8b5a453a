"""One module per resource; each exposes `router`."""

from __future__ import annotations

from fastapi import FastAPI


def include_routes(app: FastAPI) -> None:
    from leadbridge.api.routes import (
        attribution,
        calls,
        connections,
        contacts,
        conversions,
        hits,
        marketing_sources,
        organisations,
        scoring,
        sites,
        sync,
        website_visitors,
    )
    from leadbridge.web import permalink

    app.include_router(sites.router)
    app.include_router(website_visitors.router)
    app.include_router(hits.router)
    app.include_router(contacts.router)
    app.include_router(organisations.router)
    app.include_router(scoring.router)
    app.include_router(connections.router)
    app.include_router(sync.router)
    app.include_router(calls.router)
    app.include_router(marketing_sources.router)
    app.include_router(marketing_sources.numbers_router)
    app.include_router(conversions.router)
    app.include_router(attribution.router)
    app.include_router(permalink.router)
