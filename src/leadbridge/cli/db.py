"""`leadbridge db upgrade`: bring the schema up to date."""

from __future__ import annotations

import typer

from leadbridge.cli.common import console, engine, friendly_errors
from leadbridge.jobs import ensure_job_schema
from leadbridge.store import upgrade as run_upgrade

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
@friendly_errors
def upgrade() -> None:
    """Apply every pending migration (safe to run again); on PostgreSQL also the job
    queue's schema."""
    eng = engine()
    try:
        run_upgrade(eng)
        jobs_schema = ensure_job_schema(eng)
    finally:
        eng.dispose()
    if jobs_schema is not None:
        console.print(jobs_schema)
    console.print(f"database is up to date ({eng.url.render_as_string(hide_password=True)})")
