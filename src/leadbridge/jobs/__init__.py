"""Background jobs: one interface, two runners (see `leadbridge.jobs.interface`).

`open_jobs` picks the runner for the database: in-process on SQLite (the default, run by
`leadbridge serve`), procrastinate on PostgreSQL (run by `leadbridge worker` processes, and
by `serve` too). Callers enqueue through the returned `Jobs` and never name a runner.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import Engine

from leadbridge.config import Settings
from leadbridge.jobs.inprocess import InProcessJobs
from leadbridge.jobs.interface import (
    KINDS,
    JobContext,
    JobKind,
    Jobs,
    JobState,
    JobStatus,
    Payload,
    SyncCycleFailed,
    UnknownJobKind,
    register,
    sync_lock,
)
from leadbridge.jobs.triggers import SyncSoon

__all__ = [
    "KINDS",
    "JobContext",
    "JobKind",
    "JobState",
    "JobStatus",
    "Jobs",
    "Payload",
    "SyncCycleFailed",
    "SyncSoon",
    "UnknownJobKind",
    "ensure_job_schema",
    "open_jobs",
    "register",
    "schedule_sync",
    "sync_lock",
]


def open_jobs(db: Engine, settings: Settings,
              runner: Literal["inprocess", "procrastinate"] | None = None) -> Jobs:
    """The runner for this database: procrastinate on PostgreSQL, in-process on SQLite
    (`runner` overrides the choice; the in-process runner works on both)."""
    chosen = runner or ("procrastinate" if db.dialect.name == "postgresql" else "inprocess")
    if chosen == "inprocess":
        return InProcessJobs(db, settings)
    from leadbridge.jobs.procrastinate_runner import ProcrastinateJobs

    return ProcrastinateJobs(db, settings)


def ensure_job_schema(db: Engine) -> str | None:
    """On PostgreSQL, create or migrate procrastinate's schema and say what was done; on
    SQLite there is nothing to do (the `jobs` table is an Alembic migration)."""
    if db.dialect.name != "postgresql":
        return None
    from leadbridge.jobs.procrastinate_runner import ensure_schema

    return ensure_schema(db)


def schedule_sync(jobs: Jobs, settings: Settings) -> None:
    """Sync every enabled connection every `sync.interval_minutes`."""
    jobs.schedule("sync_all", settings.sync.interval_minutes * 60)
