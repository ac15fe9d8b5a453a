"""`leadbridge sync [CONNECTION] [--dry-run]` and `leadbridge sync errors`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from leadbridge.cli.common import console, engine, err_console, friendly_errors, settings
from leadbridge.errors import InputError
from leadbridge.sync import errorqueue
from leadbridge.sync.engine import CycleReport
from leadbridge.sync.runner import sync_connections


@friendly_errors
def sync(
    connection: Annotated[str | None, typer.Argument(
        help="a connection name (all enabled ones when left out), or `errors` for the "
             "error queue")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan, write nothing")]
    = False,
    retry: Annotated[int | None, typer.Option(help="with `errors`: retry this error now")]
    = None,
    dismiss: Annotated[int | None, typer.Option(help="with `errors`: dismiss this error")]
    = None,
    all_: Annotated[bool, typer.Option("--all", help="with `errors`: also closed ones")]
    = False,
) -> None:
    """Run one sync cycle, or (`sync errors`) list and act on the sync-error queue."""
    if connection == "errors":
        _errors(retry, dismiss, all_)
        return
    if retry is not None or dismiss is not None or all_:
        raise InputError("--retry, --dismiss and --all go with `leadbridge sync errors`")
    cfg = settings()
    db = engine(cfg)
    try:
        outcomes = sync_connections(db, cfg, connection, dry_run=dry_run)
    finally:
        db.dispose()
    if not outcomes:
        console.print("no enabled connections; add one with `leadbridge connections add`")
    failed = False
    for outcome in outcomes:
        if outcome.report is None:
            console.print(f"{outcome.connection}: a cycle is already running elsewhere; skipped")
            continue
        _print_report(outcome.connection, outcome.report, dry_run)
        failed = failed or outcome.report.status != "ok"
    if failed:
        raise typer.Exit(1)


def _print_report(name: str, report: CycleReport, dry_run: bool) -> None:
    title = "plan" if dry_run else f"run {report.run_id}: {report.status}"
    console.print(f"[bold]{name}[/bold] — {title}, {report.api_calls} API calls",
                  highlight=False)
    for change in report.plan:
        console.print(f"  {change.direction:<5} {change.object:<16} {change.operation:<7} "
                      f"{change.key:<12} {change.why}", highlight=False)
    for stream, counts in sorted(report.counts.items()):
        parts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()) if n)
        console.print(f"  {stream}: {parts or 'nothing to do'}", highlight=False)
    for failure in report.failures:
        err_console.print(f"  [red]failed:[/red] {failure}", highlight=False)
    if report.budget_message:
        err_console.print(f"  [yellow]paused:[/yellow] {report.budget_message}", highlight=False)


def _errors(retry: int | None, dismiss: int | None, all_: bool) -> None:
    cfg = settings()
    db = engine(cfg)
    try:
        with db.begin() as conn:
            if retry is not None:
                errorqueue.retry_now(conn, retry, datetime.now(UTC))
                console.print(f"error {retry} will be retried in the next cycle")
                return
            if dismiss is not None:
                errorqueue.dismiss(conn, dismiss)
                console.print(f"error {dismiss} dismissed")
                return
            rows = errorqueue.list_errors(conn, status=None if all_ else errorqueue.OPEN)
    finally:
        db.dispose()
    if not rows:
        console.print("no sync errors")
        return
    for e in rows:
        retry_at = f"{e.next_retry_at:%Y-%m-%d %H:%M}" if e.next_retry_at else "needs a person"
        console.print(f"{e.id}\t{e.status}\t{e.level}\t{e.direction} {e.object} "
                      f"{e.record_key}\tattempts {e.attempts}\tretry {retry_at}\t{e.reason}",
                      highlight=False, soft_wrap=True)
