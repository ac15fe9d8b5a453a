"""`leadbridge apikeys create|list|revoke`."""

from __future__ import annotations

import typer

from leadbridge.apikeys import create_key, list_keys, revoke_key
from leadbridge.cli.common import console, err_console, friendly_errors, transaction

app = typer.Typer(help="API keys (stored hashed; shown once).", no_args_is_help=True)


@app.command("create")
@friendly_errors
def create(name: str) -> None:
    """Create a key and print it once; it cannot be shown again."""
    with transaction() as conn:
        key, clear = create_key(conn, name)
    err_console.print(f"API key {key.id} ({key.name}) — store it now, it is not shown again:")
    print(clear)


@app.command("list")
@friendly_errors
def list_() -> None:
    with transaction() as conn:
        for key, revoked in list_keys(conn):
            state = f"revoked {revoked:%Y-%m-%d}" if revoked else "active"
            console.print(f"{key.id}\t{key.name}\t{key.prefix}…\t{state}", highlight=False)


@app.command("revoke")
@friendly_errors
def revoke(key_id: int) -> None:
    with transaction() as conn:
        revoke_key(conn, key_id)
    console.print(f"API key {key_id} revoked")
