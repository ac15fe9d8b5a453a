"""`leadbridge organisations ...`: the companies (and ISPs) behind visits, as people fix them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select

from leadbridge.cli.common import console, err_console, friendly_errors, transaction
from leadbridge.identify import organisations as orgs
from leadbridge.identify.enrichment import import_companies
from leadbridge.identify.resolvers import load_ranges
from leadbridge.store.tables import organisations

app = typer.Typer(help="Organisations behind visits: list, rename, reclassify, merge, block.",
                  no_args_is_help=True)


@app.command("list")
@friendly_errors
def list_(
    type_: Annotated[str | None, typer.Option("--type", help="company, isp, hosting, ...")] = None,
) -> None:
    query = select(organisations.c.id, organisations.c.name, organisations.c.domain,
                   organisations.c.type, organisations.c.blocked, organisations.c.merged_into_id,
                   organisations.c.hit_count).order_by(organisations.c.id)
    if type_:
        query = query.where(organisations.c.type == type_)
    with transaction() as conn:
        for r in conn.execute(query):
            flags = " blocked" if r.blocked else ""
            flags += f" merged into {r.merged_into_id}" if r.merged_into_id else ""
            console.print(f"{r.id}\t{r.type}\t{r.name}\t{r.domain or ''}\t{r.hit_count} hits"
                          f"{flags}", highlight=False)


@app.command("rename")
@friendly_errors
def rename(org_id: int, name: str) -> None:
    with transaction() as conn:
        orgs.rename(conn, org_id, name)
    console.print(f"organisation {org_id} renamed to {name!r}")


@app.command("reclassify")
@friendly_errors
def reclassify(org_id: int, type_: Annotated[str, typer.Argument(metavar="TYPE")]) -> None:
    """Set the type (company, isp, hosting, education, government); a person's choice sticks."""
    with transaction() as conn:
        orgs.reclassify(conn, org_id, type_)
    console.print(f"organisation {org_id} is now {type_}")


@app.command("block")
@friendly_errors
def block(org_id: int) -> None:
    """Hide an organisation from Website Visitors and stop scoring it."""
    with transaction() as conn:
        orgs.block(conn, org_id)
    console.print(f"organisation {org_id} blocked")


@app.command("unblock")
@friendly_errors
def unblock(org_id: int) -> None:
    with transaction() as conn:
        orgs.unblock(conn, org_id)
    console.print(f"organisation {org_id} unblocked")


@app.command("merge")
@friendly_errors
def merge(source_id: int, into_id: Annotated[int, typer.Option("--into")]) -> None:
    """Merge one organisation into another: hits, totals and lookup keys move over."""
    with transaction() as conn:
        orgs.merge(conn, source_id, into_id)
    console.print(f"organisation {source_id} merged into {into_id}")


@app.command("enrich")
@friendly_errors
def enrich(path: Path) -> None:
    """Import a company CSV (domain or name; employees, industry, address, phone, website)."""
    with transaction() as conn:
        report = import_companies(conn, path)
    for problem in report.errors:
        err_console.print(f"[yellow]skipped:[/yellow] {problem}", highlight=False)
    console.print(report.summary(), highlight=False)
    if report.errors:
        raise typer.Exit(1)


@app.command("check-ranges")
@friendly_errors
def check_ranges(path: Path) -> None:
    """Validate an IP-range CSV (network,company,domain,type) and report every bad line."""
    ranges, errors = load_ranges(path)
    for problem in errors:
        err_console.print(f"[yellow]bad line:[/yellow] {problem}", highlight=False)
    console.print(f"{len(ranges)} ranges ok, {len(errors)} bad lines")
    if errors:
        raise typer.Exit(1)
