"""`leadbridge conversions import|poll|sources|numbers`: offline conversions and calls in.

`app` is the `conversions` command group; reports and goals add their commands to it
(`leadbridge.cli.attribution`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from leadbridge.cli.common import console, engine, friendly_errors, settings, transaction
from leadbridge.conversions.dropfolder import poll_locked
from leadbridge.conversions.importer import ImportReport, import_path
from leadbridge.conversions.sources import (
    add_number,
    add_source,
    list_sources,
    remove_number,
    source_id_by_name,
)
from leadbridge.errors import InputError

app = typer.Typer(help="Offline conversions and calls: imports, drop folder, marketing sources.",
                  no_args_is_help=True)
sources_app = typer.Typer(help="Marketing sources (what a tracking number was bought for).",
                          no_args_is_help=True)
numbers_app = typer.Typer(help="Tracking numbers and their marketing sources.",
                          no_args_is_help=True)
app.add_typer(sources_app, name="sources")
app.add_typer(numbers_app, name="numbers")


def print_report(report: ImportReport, shown: int) -> None:
    what = "dry run of " if report.dry_run else ""
    console.print(f"{what}{report.filename}: {report.status}"
                  + (f" (import {report.import_id})" if report.import_id else ""),
                  highlight=False)
    if report.message:
        console.print(f"  {report.message}", highlight=False)
        return
    console.print(f"  rows read {report.rows_read} = accepted {report.accepted} + merged "
                  f"{report.merged} + rejected {report.rejected}", highlight=False)
    if report.ignored_columns:
        console.print(f"  columns ignored: {', '.join(report.ignored_columns)}",
                      highlight=False)
    for kind, n in report.reasons.most_common():
        console.print(f"  {n:>8}  {kind}", highlight=False)
    for r in report.rejections[:shown]:
        console.print(f"  line {r.row_number}: {r.reason}", highlight=False)
    hidden = report.rejected - min(shown, len(report.rejections))
    if hidden > 0:
        more = (f"GET /api/v1/conversions/imports/{report.import_id}" if report.import_id
                else "import it without --dry-run to keep them all")
        console.print(f"  ... {hidden} more rejected rows ({more})", highlight=False)


@app.command("import")
@friendly_errors
def import_(
    file: Annotated[Path, typer.Argument(help="a CSV of conversions", show_default=False)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate and report; write "
                                          "nothing")] = False,
    show: Annotated[int, typer.Option(min=0, help="rejected rows to print")] = 20,
) -> None:
    """Import a CSV of conversions and print the report (exit 2 if the file is refused).

    Header: action,title,occurred_at,transaction_ref,amount,currency,margin,visitor_id,call_ref
    (or act,t,dt,txr,txv,txc,vid,callRef); UTF-8 with or without BOM; comma or semicolon.
    """
    cfg = settings()
    eng = engine(cfg)
    try:
        report = import_path(eng, file, settings=cfg.conversions, dry_run=dry_run,
                             keep_rejections=show)
    finally:
        eng.dispose()
    print_report(report, show)
    if report.status != "done":
        raise typer.Exit(2)


@app.command("poll")
@friendly_errors
def poll() -> None:
    """One pass over the drop folder (conversions.drop.location); serve polls it regularly."""
    cfg = settings()
    eng = engine(cfg)
    try:
        processed = asyncio.run(poll_locked(eng, cfg))
    finally:
        eng.dispose()
    if processed is None:
        console.print("another process is polling the drop folder; nothing done")
        return
    if not processed:
        console.print("no settled CSV files in the drop folder")
    for p in processed:
        console.print(f"{p.name} -> {p.moved_to}", highlight=False)
        print_report(p.report, 5)


@sources_app.command("add")
@friendly_errors
def sources_add(
    name: str,
    channel: Annotated[str | None, typer.Option(help="direct, organic_search, paid_search, "
                                                "email, social, referral or campaign")] = None,
    source: Annotated[str | None, typer.Option(help="e.g. radio, google, yellow-pages")] = None,
    campaign: Annotated[str | None, typer.Option()] = None,
    number: Annotated[list[str], typer.Option("--number", help="a tracking number (E.164); "
                                              "repeatable")] = [],  # noqa: B006
) -> None:
    """Add a marketing source, with its tracking numbers."""
    with transaction() as conn:
        created = add_source(conn, name, channel=channel, source=source, campaign=campaign)
        numbers = [add_number(conn, n, created.id) for n in number]
    console.print(f"marketing source {created.id} {created.name!r}"
                  + (f" with {', '.join(numbers)}" if numbers else ""), highlight=False)


@sources_app.command("list")
@friendly_errors
def sources_list() -> None:
    with transaction() as conn:
        found = list_sources(conn)
    for s in found:
        console.print(f"{s.id}\t{s.name}\t{s.channel or '-'}\t{s.source or '-'}\t"
                      f"{s.campaign or '-'}\t{', '.join(s.numbers) or '-'}", highlight=False)


@numbers_app.command("add")
@friendly_errors
def numbers_add(
    number: str,
    source: Annotated[str, typer.Option("--source", help="the marketing source's name")] = "",
) -> None:
    """Give a tracking number to a marketing source (moving it if another had it)."""
    if not source:
        raise InputError("name the marketing source: --source NAME")
    with transaction() as conn:
        e164 = add_number(conn, number, source_id_by_name(conn, source))
    console.print(f"{e164} -> {source}", highlight=False)


@numbers_app.command("remove")
@friendly_errors
def numbers_remove(number: str) -> None:
    with transaction() as conn:
        e164 = remove_number(conn, number)
    console.print(f"{e164} removed", highlight=False)
