"""`leadbridge sites add|list|remove`."""

from __future__ import annotations

from typing import Annotated

import typer

from leadbridge.cli.common import console, friendly_errors, transaction
from leadbridge.sites import add_site, list_sites, remove_site

app = typer.Typer(help="Tracked websites.", no_args_is_help=True)


@app.command("add")
@friendly_errors
def add(
    name: str,
    host: Annotated[list[str], typer.Option("--host", help="allowed host name; repeatable; "
                                            "*.example.com allows subdomains")] = [],  # noqa: B006
) -> None:
    """Add a site and print its numeric id (Matomo's idsite)."""
    with transaction() as conn:
        site = add_site(conn, name, host)
    print(site.id)


@app.command("list")
@friendly_errors
def list_() -> None:
    with transaction() as conn:
        for site in list_sites(conn):
            console.print(f"{site.id}\t{site.name}\t{', '.join(site.hosts)}", highlight=False)


@app.command("remove")
@friendly_errors
def remove(site_id: int) -> None:
    with transaction() as conn:
        remove_site(conn, site_id)
    console.print(f"site {site_id} removed")
