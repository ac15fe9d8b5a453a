"""Sync cycles inside `leadbridge serve`: every `sync.interval_minutes`, and soon after an
event that matters (a new Website Visitor), never two cycles of one connection at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import Engine

from leadbridge.config import Settings
from leadbridge.sync.runner import sync_connections

log = logging.getLogger(__name__)
DEBOUNCE_SECONDS = 10.0


class SyncScheduler:
    def __init__(self, db: Engine, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.soon = asyncio.Event()
        self.cycles = 0

    def nudge(self) -> None:
        """Ask for a cycle soon (called on the event loop, e.g. by the intake)."""
        self.soon.set()

    async def run(self) -> None:
        interval = self.settings.sync.interval_minutes * 60
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.soon.wait(), interval)
                await asyncio.sleep(DEBOUNCE_SECONDS)  # gather a burst into one cycle
            self.soon.clear()
            try:
                outcomes = await asyncio.to_thread(sync_connections, self.db, self.settings)
            except Exception:
                log.exception("sync cycle failed; the next one runs on schedule")
                continue
            self.cycles += 1
            for outcome in outcomes:
                if outcome.report is not None and outcome.report.status != "ok":
                    log.warning("sync of %s: %s (%s)", outcome.connection,
                                outcome.report.status, "; ".join(outcome.report.failures))
