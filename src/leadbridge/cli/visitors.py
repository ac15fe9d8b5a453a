"""`leadbridge visitors ...`: Website Visitors and their CRM accounts."""

from __future__ import annotations

from typing import Annotated

import typer

from leadbridge.cli.common import console, engine, friendly_errors, settings
from leadbridge.sync.accounts import create_account

app = typer.Typer(help="Website Visitors: the companies behind visits, and their CRM accounts.",
                  no_args_is_help=True)

_SAID = {
    "created": "created {obj} {account} in {connection}",
    "matched": "associated with the existing {obj} {account} in {connection} "
               "(same {matched_by})",
    "existing": "already associated with {obj} {account} in {connection}; nothing to do",
}


@app.command("create-account")
@friendly_errors
def create_account_command(
    visitor_id: Annotated[int, typer.Argument(metavar="ID", help="the Website Visitor's id")],
    connection: Annotated[str | None, typer.Option(
        help="the CRM connection (the only enabled one when left out)")] = None,
) -> None:
    """Create a CRM account from a Website Visitor and associate the two; an account with
    the same domain or name is associated instead of creating a second one."""
    cfg = settings()
    db = engine(cfg)
    try:
        done = create_account(db, cfg, visitor_id, connection)
    finally:
        db.dispose()
    console.print(f"website visitor {done.website_visitor_id}: " + _SAID[done.outcome].format(
        obj=done.crm_object, account=done.account_id, connection=done.connection,
        matched_by=done.matched_by), highlight=False)
