"""`leadbridge erase` and `leadbridge retention`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from leadbridge.cli.common import console, engine, friendly_errors, settings
from leadbridge.errors import InputError
from leadbridge.privacy.erase import erase_browser, erase_contact
from leadbridge.privacy.retention import apply_retention
from leadbridge.scoring.ruleset import load_decay


@friendly_errors
def erase(
    contact: Annotated[str | None, typer.Option("--contact", help="the contact's email")] = None,
    browser: Annotated[str | None, typer.Option("--browser", help="a visitor id")] = None,
) -> None:
    """Remove a person's data: a contact (and its browsers) or one browser visitor."""
    if (contact is None) == (browser is None):
        raise InputError("give exactly one of --contact EMAIL or --browser ID")
    cfg = settings()
    eng = engine(cfg)
    try:
        with eng.begin() as conn:
            decay = load_decay(conn, cfg.scoring)
            if contact is not None:
                report = erase_contact(conn, contact, decay)
            else:
                report = erase_browser(conn, browser or "", decay)
    finally:
        eng.dispose()
    console.print(f"erased {report.contacts} contact(s), {report.browsers} browser(s), "
                  f"{report.hits} hit(s)")


@friendly_errors
def retention(
    days: Annotated[int | None, typer.Option(help="override privacy.raw_hit_retention_days")]
    = None,
) -> None:
    """Delete raw hits older than the retention period (totals and scores stay)."""
    cfg = settings()
    keep = days if days is not None else cfg.privacy.raw_hit_retention_days
    if keep is None:
        console.print("no retention period set (privacy.raw_hit_retention_days); nothing to do")
        return
    if keep < 1:
        raise InputError("--days must be at least 1")
    eng = engine(cfg)
    try:
        removed = apply_retention(eng, keep, datetime.now(UTC))
    finally:
        eng.dispose()
    console.print(f"{removed:,} hits older than {keep} days deleted")
