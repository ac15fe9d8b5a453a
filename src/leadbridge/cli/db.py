"""`leadbridge db upgrade`: bring the schema up to date."""

from __future__ import annotations

import typer

from leadbridge.cli.common import console, engine, friendly_errors
from leadbridge.store import upgrade as run_upgrade

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
@friendly_errors
def upgrade() -> None:
    """Apply every pending migration (safe to run again)."""
    eng = engine()
    try:
        run_upgrade(eng)
    finally:
        eng.dispose()
    console.print(f"database is up to date ({eng.url.render_as_string(hide_password=True)})")
