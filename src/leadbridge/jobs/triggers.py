"""Immediate pushes: the events that matter (a new Website Visitor, a band change) ask for a
sync of every enabled connection soon, instead of waiting for the next scheduled cycle.

`SyncSoon` is the intake's hook (`BatchWriter.on_new_organisations` / `on_band_change`): it
runs on the batch's own connection, inside the batch's transaction, and enqueues one
`sync_connection` job per enabled connection there — so on PostgreSQL the job commits or
rolls back with the hits (procrastinate defers on that same connection), and on SQLite no
second connection ever waits for the write lock the batch holds. The idempotency key is the
connection's sync lock: while a job for the connection waits, later events join it, so a
burst of events within `delay_seconds` becomes one cycle per connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select

from leadbridge.jobs.interface import Jobs, sync_lock
from leadbridge.scoring.decay import Bands
from leadbridge.store.tables import connections

if TYPE_CHECKING:
    from leadbridge.config import Settings
    from leadbridge.tracking.batch import BatchWriter

log = logging.getLogger(__name__)


def push_soon(writer: BatchWriter, jobs: Jobs, settings: Settings) -> None:
    """Make `writer`'s batches ask for a sync soon after a new Website Visitor or a band
    change."""
    soon = SyncSoon(jobs, settings.sync.push_delay_seconds)
    writer.bands = Bands(settings.scoring.bands)
    writer.on_new_organisations = soon
    writer.on_band_change = soon


class SyncSoon:
    """Enqueue a sync of each enabled connection `delay_seconds` from now, on `conn`."""

    def __init__(self, jobs: Jobs, delay_seconds: float, *, names_for_seconds: float = 10.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.jobs = jobs
        self.delay = timedelta(seconds=delay_seconds)
        self.names_for_seconds = names_for_seconds
        self.monotonic = monotonic
        self._names: list[str] = []
        self._names_read = -float("inf")
        self.requests = 0  # events seen (for tests and logs)

    def __call__(self, conn: Connection) -> None:
        self.requests += 1
        run_at = datetime.now(UTC) + self.delay
        for name in self._enabled(conn):
            # in a savepoint: a job queue that refuses must not cost the batch its hits
            try:
                with conn.begin_nested():
                    self.jobs.enqueue("sync_connection", {"name": name}, key=sync_lock(name),
                                      run_at=run_at, conn=conn)
            except Exception:
                log.exception("could not ask for a sync of %s after a tracking event; the "
                              "scheduled cycle will carry the change", name)

    def _enabled(self, conn: Connection) -> list[str]:
        """The enabled connections' names, read on `conn` at most every few seconds."""
        now = self.monotonic()
        if now - self._names_read >= self.names_for_seconds:
            self._names = list(conn.execute(select(connections.c.name).where(
                connections.c.enabled.is_(True)).order_by(connections.c.name)).scalars())
            self._names_read = now
        return self._names
