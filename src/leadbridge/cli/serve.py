"""`leadbridge serve`: migrate, re-score if the rules changed, and run the hub."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
import uvicorn
from sqlalchemy import func, select

from leadbridge.cli.common import console, err_console, friendly_errors, settings
from leadbridge.cli.scoring import rescore_with_progress
from leadbridge.config import Settings
from leadbridge.gctune import settle_server
from leadbridge.hub import Hub
from leadbridge.identify.enrichment import import_companies
from leadbridge.jobs import ensure_job_schema
from leadbridge.scoring.backfill import mark_current, needs_rescore, rebase_if_needed
from leadbridge.store import make_engine, upgrade
from leadbridge.store.tables import hits, organisations

if TYPE_CHECKING:
    from leadbridge.demo import Demo


@friendly_errors
def serve(
    host: Annotated[str | None, typer.Option(help="listen address (default from settings)")]
    = None,
    port: Annotated[int | None, typer.Option(help="port (default from settings)")] = None,
    demo: Annotated[bool, typer.Option(help="create a demo site and send it sample traffic")]
    = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="worker processes; each has "
                                         "its own group-commit writer")] = 1,
) -> None:
    """Run the hub: tracking endpoint, API (docs at /docs) and permalink pages."""
    cfg = settings()
    if host or port:
        cfg = Settings(**{**cfg.model_dump(exclude={"public_url"}),
                          "host": host or cfg.host, "port": port or cfg.port})
    demo_info: Demo | None = None
    if demo:
        from leadbridge import demo as demo_data

        cfg = demo_data.demo_settings(cfg)
    hub = prepare(cfg)
    if demo:
        demo_info = demo_data.prepare(hub.engine)
        hub.refresh(force=True)
    if demo_info is not None:
        threading.Thread(target=_run_demo, args=(hub, demo_info), daemon=True).start()
    else:
        console.print(f"LeadBridge on {cfg.public_url}  (API docs: {cfg.public_url}/docs)")
    # X-Forwarded-For is read by the hub itself, only from tracking.trusted_proxies
    options: dict[str, Any] = {"host": cfg.host, "port": cfg.port, "log_level": "warning",
                               "access_log": False, "server_header": False,
                               "proxy_headers": False}
    if workers > 1:
        # each worker builds its own hub from the same settings (environment and TOML)
        os.environ["LEADBRIDGE_HOST"], os.environ["LEADBRIDGE_PORT"] = cfg.host, str(cfg.port)
        if cfg.identify.ip_ranges_csv is not None:
            os.environ["LEADBRIDGE_IDENTIFY__IP_RANGES_CSV"] = str(cfg.identify.ip_ranges_csv)
        uvicorn.run("leadbridge.api.app:app_from_settings", factory=True, workers=workers,
                    **options)
        return
    from leadbridge.api.app import create_app

    app = create_app(hub.settings, hub)
    settle_server()
    uvicorn.run(app, **options)


def prepare(cfg: Settings) -> Hub:
    """Migrate, move the decay epoch if due, re-score if rules changed; return the hub."""
    engine = make_engine(cfg.database_url, synchronous=cfg.tracking.sqlite_synchronous)
    upgrade(engine)
    ensure_job_schema(engine)
    rebase_if_needed(engine, cfg, datetime.now(UTC))
    if cfg.identify.companies_csv is not None:
        with engine.begin() as conn:
            report = import_companies(conn, cfg.identify.companies_csv)
        for problem in report.errors:
            err_console.print(f"[yellow]company CSV:[/yellow] {problem}", highlight=False)
    if needs_rescore(engine, cfg):
        with engine.connect() as conn:
            has_hits = conn.execute(select(func.count()).select_from(hits)).scalar_one() > 0
        if has_hits:
            err_console.print("scoring rules changed since the last run: re-scoring history")
            rescore_with_progress(cfg)
        else:
            mark_current(engine, cfg)
    return Hub(cfg, engine, serving=True)


def _run_demo(hub: Hub, demo: Demo) -> None:
    from leadbridge.demo import send_traffic

    base = f"http://{hub.settings.host}:{hub.settings.port}"
    try:
        sent = send_traffic(base, demo)
    except Exception as exc:  # the server keeps running; say what went wrong
        err_console.print(f"[red]demo traffic failed:[/red] {exc}")
        return
    url = hub.settings.public_url
    auth = f"-H 'Authorization: Bearer {demo.api_key}'"
    lines = [
        f"LeadBridge demo is running on {url}",
        f"  sample traffic: {sent} hits sent through {url}/matomo.php (site {demo.site_id})",
        f"  demo API key:   {demo.api_key}",
        f"  API docs:       {url}/docs",
        f"  visitors:       curl {auth} "
        f"'{url}/api/v1/website-visitors?view=last-6-months-by-score'",
        f"  hits:           curl {auth} '{url}/api/v1/hits'",
    ]
    with hub.engine.connect() as conn:
        top = conn.execute(
            select(organisations.c.name, organisations.c.permalink_token)
            .where(organisations.c.type == "company")
            .order_by(organisations.c.score_weight.desc()).limit(3)
        ).all()
    lines += [f"  permalink:      {url}/p/{token}  ({name})" for name, token in top]
    console.print("\n" + "\n".join(lines) + "\n", highlight=False, soft_wrap=True)
