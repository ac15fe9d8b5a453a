"""`leadbridge conversions report|crm-without-marketing|reattribute`: attribution, added to the
`conversions` command group by `register`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from leadbridge.cli.common import console, friendly_errors, transaction
from leadbridge.conversions.attribution import MODELS, reattribute
from leadbridge.conversions.reports import (
    DIMENSIONS,
    INTERVALS,
    attribution_report,
    crm_records_without_marketing,
    parse_moment,
    parse_period,
)


@friendly_errors
def report(
    model: Annotated[str, typer.Option(help=f"{', '.join(MODELS)}")] = "last_touch",
    by: Annotated[str, typer.Option(help=f"{', '.join(DIMENSIONS)}")] = "channel",
    start: Annotated[str | None, typer.Option(
        "--from", help="first day (ISO 8601 date, UTC) or time")] = None,
    end: Annotated[str | None, typer.Option(
        "--to", help="last day included (ISO 8601 date) or time excluded")] = None,
    action: Annotated[str | None, typer.Option(help="only this action (e.g. sale)")] = None,
    per: Annotated[str | None, typer.Option(help=f"{', '.join(INTERVALS)}: rows per UTC "
                                            "period")] = None,
) -> None:
    """Conversions, revenue and margin by channel, source or campaign under one model."""
    since, until = parse_period(start, end)
    with transaction() as conn:
        found = attribution_report(conn, model=model, by=by, since=since, until=until,
                                   action=action, interval=per)
    periods = found.interval is not None
    table = Table(*(["period"] if periods else []), found.by, "currency", "conversions",
                  "revenue", "margin", title=f"{found.model} attribution by {found.by}")
    for row in found.rows:
        table.add_row(*([row.period or ""] if periods else []), row.key, row.currency or "-",
                      str(row.conversions), str(row.revenue), str(row.margin))
    for total in found.totals:
        table.add_row(*([total.period or ""] if periods else []), "[bold]total[/bold]",
                      total.currency or "-", str(total.conversions), str(total.revenue),
                      str(total.margin))
    console.print(table)


@friendly_errors
def crm_without_marketing(
    connection: Annotated[str | None, typer.Option(help="one connection only")] = None,
) -> None:
    """CRM records whose visitor id or call reference matches no visit and no call."""
    with transaction() as conn:
        found = crm_records_without_marketing(conn, connection)
    if not found:
        console.print("every CRM record with a visitor id or call reference has marketing data")
        return
    table = Table("connection", "object", "id", "visitor id", "call ref", "why")
    for r in found:
        table.add_row(r.connection, r.object, r.id, r.visitor_key or "", r.call_ref or "",
                      r.reason)
    console.print(table)


@friendly_errors
def reattribute_command(
    since: Annotated[str | None, typer.Option(
        help="only conversions from this ISO 8601 date or time on")] = None,
) -> None:
    """Credit stored conversions again (after late matches or late hits)."""
    with transaction() as conn:
        done = reattribute(conn, since=parse_moment(since, "--since"))
    console.print(f"{done} conversions credited again")


def register(group: typer.Typer) -> None:
    """Add the attribution commands to the `conversions` group."""
    group.command("report")(report)
    group.command("crm-without-marketing")(crm_without_marketing)
    group.command("reattribute")(reattribute_command)
