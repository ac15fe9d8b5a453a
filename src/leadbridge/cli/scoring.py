"""`leadbridge scoring rescore|rules`."""

from __future__ import annotations

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from leadbridge.cli.common import console, engine, friendly_errors, settings
from leadbridge.config import Settings
from leadbridge.scoring.backfill import rescore as run_rescore
from leadbridge.scoring.ruleset import load_rules

app = typer.Typer(help="Page and event scoring.", no_args_is_help=True)


def rescore_with_progress(cfg: Settings | None = None) -> int:
    cfg = cfg or settings()
    eng = engine(cfg)
    try:
        with Progress(TextColumn("re-scoring hits"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=console) as bar:
            task = bar.add_task("rescore", total=None)

            def report(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            return run_rescore(eng, cfg, report)
    finally:
        eng.dispose()


@app.command("rescore")
@friendly_errors
def rescore() -> None:
    """Re-score all stored hits with the current rules (a back-fill, with progress)."""
    changed = rescore_with_progress()
    console.print(f"{changed:,} hits changed score, name or category")


@app.command("rules")
@friendly_errors
def rules() -> None:
    """Print the rules in force (leadbridge.toml first, then those set through the API)."""
    cfg = settings()
    eng = engine(cfg)
    with eng.connect() as conn:
        ruleset = load_rules(conn, cfg.scoring)
    eng.dispose()
    for r in ruleset.page_rules:
        console.print(f"page\t{r.pattern}\t{r.name}\t{r.category}\t{r.score:g}", highlight=False)
    for e in ruleset.event_rules:
        console.print(f"event\t{e.category}/{e.action}/{e.name}\t{e.label}\t{e.score:g}",
                      highlight=False)
    console.print(f"default page score {ruleset.default_page_score:g}; "
                  f"half-life {cfg.scoring.half_life_days:g} days; bands {cfg.scoring.bands}")
