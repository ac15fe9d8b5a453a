"""The procrastinate runner: jobs in PostgreSQL, shared by any number of `leadbridge worker`
processes on any number of machines.

Each job kind is a procrastinate task of the same name; a job's idempotency key is its
`queueing_lock` (one waiting job per key) and its kind's lock its `lock` (one running job
per lock). A job is deferred on a connection of the hub's own engine, so with `conn` it
commits or rolls back with the caller's data change (procrastinate's documented
`configure(connection=...)`, inside a savepoint so that a duplicate key leaves the caller's
transaction usable). procrastinate keeps no error text: the reason a job failed is written
to the hub's `jobs` table (`procrastinate_id`).

procrastinate's own schema is not an Alembic migration (it ships as SQL with the package):
`ensure_schema` creates it, or applies the SQL migrations of a newer procrastinate release;
the release the schema matches is kept as a comment on `procrastinate_jobs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import procrastinate
import psycopg
import psycopg.sql
from procrastinate import exceptions as procrastinate_errors
from procrastinate.jobs import Job, Status
from procrastinate.schema import SchemaManager
from sqlalchemy import Connection, Engine, text
from sqlalchemy.dialects import postgresql

from leadbridge.config import Settings
from leadbridge.errors import ConfigError, NotFound
from leadbridge.jobs.inprocess import prune_finished
from leadbridge.jobs.interface import (
    ABANDONED,
    KEEP_DONE,
    KEEP_FAILED,
    KINDS,
    SUPERSEDED,
    JobContext,
    JobKind,
    JobState,
    JobStatus,
    Payload,
    check_job,
    failure_reason,
    kind_named,
    retry_wait,
)
from leadbridge.store.tables import jobs

log = logging.getLogger(__name__)

_STATES: dict[str, JobState] = {
    "todo": "waiting", "doing": "running", "succeeded": "done", "failed": "failed",
    "cancelled": "cancelled", "aborting": "cancelled", "aborted": "cancelled",
}
_SCHEMA_LOCK = 0x4C42_4A53  # "LBJS": one process applies the schema at a time
_STALLED_TASK = "leadbridge.retry_stalled_jobs"
_PRUNE_TASK = "leadbridge.prune_jobs"
RECOVER = 5.0  # seconds before restarting a worker that stopped on an error


class _RunFailed(Exception):
    """A run of a job failed; carries the reason and the wait before the next run (None: no
    next run), decided once by the job interface's retry policy."""

    def __init__(self, reason: str, wait: int | None) -> None:
        super().__init__(reason)
        self.wait = wait


class _ObeyRunner(procrastinate.BaseRetryStrategy):
    """Retries exactly as `_RunFailed` says; anything else (a bug in the wrapper) is not
    retried."""

    def get_retry_decision(self, *, exception: BaseException,
                           job: Job) -> procrastinate.RetryDecision | None:
        if isinstance(exception, _RunFailed) and exception.wait is not None:
            return procrastinate.RetryDecision(retry_in={"seconds": exception.wait})
        return None


class ProcrastinateJobs:
    """Jobs as procrastinate tasks on the hub's PostgreSQL database."""

    runner = "procrastinate"

    def __init__(self, db: Engine, settings: Settings, *, poll_seconds: float = 1.0) -> None:
        if db.dialect.name != "postgresql":
            raise ConfigError("procrastinate jobs need PostgreSQL; on SQLite `leadbridge serve` "
                              "runs jobs in-process")
        self.db = db
        self.settings = settings
        self.poll_seconds = poll_seconds
        self._schedules: dict[str, tuple[float, Payload]] = {}
        # never opened: every defer runs on a connection of the hub's engine
        self._defer_app = procrastinate.App(connector=procrastinate.SyncPsycopgConnector())

    # -- the interface ---------------------------------------------------------------------

    def enqueue(self, kind: str, payload: Payload | None = None, *, key: str | None = None,
                run_at: datetime | None = None, conn: Connection | None = None) -> int | None:
        """Defer a job; None if a job with the same `key` is already waiting. With `conn`,
        the job is part of that transaction."""
        found, data, lock = check_job(kind, payload)
        if conn is None:
            with self.db.begin() as own:
                return self._defer(own, found.name, data, key=key, lock=lock, run_at=run_at)
        return self._defer(conn, found.name, data, key=key, lock=lock, run_at=run_at)

    def schedule(self, kind: str, every_seconds: float, payload: Payload | None = None) -> None:
        """Defer `kind` on the cron schedule nearest to `every_seconds` (see `cron_for`);
        procrastinate defers each tick once, whichever worker sees it first. Takes effect in
        workers started afterwards."""
        _, data, _ = check_job(kind, payload)
        cron_for(every_seconds)  # a bad period fails here, not in the worker
        self._schedules[kind] = (float(every_seconds), data)

    def status(self, job_id: int) -> JobStatus:
        with self.db.connect() as conn:
            row = conn.execute(text(
                "SELECT j.id, j.task_name, j.status::text AS status, j.attempts, m.error "
                "FROM procrastinate_jobs j LEFT JOIN jobs m ON m.procrastinate_id = j.id "
                "WHERE j.id = :id"), {"id": job_id}).first()
        if row is None:
            raise NotFound(f"no job {job_id}")
        return JobStatus(row.id, row.task_name, _STATES[row.status], row.attempts, row.error)

    async def run(self, *, concurrency: int = 2, until_idle: bool = False) -> None:
        """Run a procrastinate worker in this process until cancelled (restarted after an
        error, such as the database going away); with `until_idle`, until no job is due or
        running (other workers' included)."""
        if not await asyncio.to_thread(self._schema_present):
            raise ConfigError("the job queue's tables are missing from the database: run "
                              "`leadbridge db upgrade`")
        while True:
            try:
                await self._work(concurrency, until_idle)
                return
            except Exception:
                if until_idle:
                    raise
                log.exception("the job worker stopped on an error; restarting in %.0f s",
                              RECOVER)
                await asyncio.sleep(RECOVER)

    async def _work(self, concurrency: int, until_idle: bool) -> None:
        app = self.worker_app(concurrency)
        async with app.open_async():
            worker = asyncio.create_task(app.run_worker_async(
                concurrency=concurrency, install_signal_handlers=False,
                fetch_job_polling_interval=self.poll_seconds,
                name=f"leadbridge-{id(self):x}"))
            try:
                if not until_idle:
                    await worker
                    return
                while not worker.done():
                    await asyncio.sleep(0.1)
                    if await asyncio.to_thread(self._idle):
                        break
            finally:
                if not worker.done():
                    worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker

    def _schema_present(self) -> bool:
        with self.db.connect() as conn:
            found = conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar()
        return found is not None

    # -- the worker side ---------------------------------------------------------------------

    def worker_app(self, concurrency: int = 2) -> procrastinate.App:
        """A procrastinate app with a task per registered job kind, the schedules, and the
        recovery of jobs whose worker stopped."""
        app = procrastinate.App(connector=procrastinate.PsycopgConnector(
            conninfo=libpq_url(self.db), min_size=1, max_size=concurrency + 4))
        for kind in KINDS.values():
            app.task(name=kind.name, pass_context=True, retry=_ObeyRunner())(
                self._task_function(kind.name))
        for name, (every, data) in self._schedules.items():
            lock = kind_named(name).lock(data)
            app.periodic(cron=cron_for(every), periodic_id=f"every:{name}",
                         task_kwargs={"payload": data}, queueing_lock=f"every:{name}",
                         lock=lock)(app.tasks[name])

        @app.periodic(cron="* * * * *")
        @app.task(name=_STALLED_TASK, queueing_lock=_STALLED_TASK)
        async def retry_stalled_jobs(timestamp: int) -> None:
            await self._recover_stalled(app)

        @app.periodic(cron="17 * * * *")
        @app.task(name=_PRUNE_TASK, queueing_lock=_PRUNE_TASK)
        async def prune_jobs(timestamp: int) -> None:
            hours = int(KEEP_DONE.total_seconds() // 3600)
            await app.job_manager.delete_old_jobs(nb_hours=hours)
            await app.job_manager.delete_old_jobs(
                nb_hours=int(KEEP_FAILED.total_seconds() // 3600), include_failed=True,
                include_cancelled=True, include_aborted=True)
            await asyncio.to_thread(self._prune_records)

        return app

    def _task_function(self, kind_name: str) -> Callable[..., None]:
        def run(context: procrastinate.JobContext, payload: Payload | None = None,
                timestamp: int | None = None) -> None:
            job = context.job
            assert job.id is not None
            attempt = job.attempts + 1
            kind = kind_named(kind_name)
            data = dict(payload or {})
            try:
                kind.handler(JobContext(self.db, self.settings, self, job.id, attempt), data)
            except Exception as exc:
                reason = failure_reason(exc)
                wait = retry_wait(kind, exc, attempt)
                if wait is not None and self._newer_waiting(job):
                    wait, reason = None, f"{reason} ({SUPERSEDED})"
                self._record(job, kind, data, attempt, reason, final=wait is None)
                if wait is None:
                    log.error("job %s %d failed after %d run(s): %s", kind_name, job.id,
                              attempt, reason)
                else:
                    log.warning("job %s %d failed (run %d), retried in %d s: %s", kind_name,
                                job.id, attempt, wait, reason)
                raise _RunFailed(reason, wait) from exc
            if job.attempts:  # an earlier run failed and left a record
                with self.db.begin() as conn:
                    conn.execute(jobs.update().where(jobs.c.procrastinate_id == job.id)
                                 .values(status="done", finished_at=_now()))

        return run

    def _newer_waiting(self, job: Job) -> bool:
        """Whether a job with this one's key waits already (then it does the retry's work,
        and procrastinate could not put this one back in the queue beside it)."""
        if job.queueing_lock is None:
            return False
        with self.db.connect() as conn:
            return conn.execute(text(
                "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE queueing_lock = :key "
                "AND status = 'todo' AND id <> :id)"),
                {"key": job.queueing_lock, "id": job.id}).scalar() is True

    def _record(self, job: Job, kind: JobKind | None, data: Payload, attempt: int,
                reason: str, *, final: bool) -> None:
        """Keep the reason of a failed run in `jobs`, which procrastinate has no place for."""
        now = _now()
        values: dict[str, Any] = {
            "kind": job.task_name, "payload": data, "status": "failed" if final else "waiting",
            "attempts": attempt, "max_attempts": kind.max_attempts if kind else attempt,
            "run_at": now, "created_at": now, "finished_at": now if final else None,
            "error": reason, "procrastinate_id": job.id}
        with self.db.begin() as conn:
            ins = postgresql.insert(jobs).values(**values)
            conn.execute(ins.on_conflict_do_update(
                index_elements=[jobs.c.procrastinate_id],
                set_={k: ins.excluded[k] for k in
                      ("status", "attempts", "finished_at", "error")}))

    async def _recover_stalled(self, app: procrastinate.App) -> None:
        """Jobs left running by a worker that stopped sending heartbeats run again, or fail
        when out of attempts (procrastinate's documented recipe, with the attempt limit)."""
        for job in await app.job_manager.get_stalled_jobs():
            kind = KINDS.get(job.task_name)
            attempt = job.attempts + 1
            if kind is not None and attempt < kind.max_attempts:
                await app.job_manager.retry_job(job)
                continue
            await app.job_manager.finish_job(job, status=Status.FAILED, delete_job=False)
            await asyncio.to_thread(self._record, job, kind, dict(job.task_kwargs), attempt,
                                    ABANDONED, final=True)

    def _prune_records(self) -> None:
        with self.db.begin() as conn:
            prune_finished(conn, _now())

    def _idle(self) -> bool:
        """No job is due or running (the worker's own upkeep tasks aside)."""
        with self.db.connect() as conn:
            return conn.execute(text(
                "SELECT NOT EXISTS (SELECT 1 FROM procrastinate_jobs "
                "WHERE NOT task_name = ANY(:upkeep) AND (status = 'doing' OR (status = 'todo' "
                "AND (scheduled_at IS NULL OR scheduled_at <= now()))))"),
                {"upkeep": [_STALLED_TASK, _PRUNE_TASK]}).scalar() is True

    def _defer(self, conn: Connection, kind: str, data: Payload, *, key: str | None,
               lock: str | None, run_at: datetime | None) -> int | None:
        deferrer = self._defer_app.configure_task(
            kind, lock=lock, queueing_lock=key, schedule_at=run_at,
            task_kwargs={"payload": data}, connection=conn.connection.driver_connection)
        try:
            with conn.begin_nested():
                return deferrer.defer()
        except procrastinate_errors.AlreadyEnqueued:
            return None


def libpq_url(db: Engine) -> str:
    """The engine's URL as psycopg/libpq spell it (no `+psycopg` driver suffix)."""
    return db.url.set(drivername="postgresql").render_as_string(hide_password=False)


def cron_for(every_seconds: float) -> str:
    """The cron schedule for a period: seconds under a minute, else whole minutes (or hours,
    or days). A period that does not divide the next unit (7 minutes) restarts at the top of
    it: 00, 07, ..., 56, then 00."""
    seconds = round(every_seconds)
    if seconds < 1:
        raise ValueError("a schedule needs a period of at least one second")
    if seconds < 60:
        return f"* * * * * */{seconds}"
    minutes = max(1, round(seconds / 60))
    if minutes < 60:
        return f"*/{minutes} * * * *"
    hours = round(minutes / 60)
    if hours < 24:
        return f"0 */{hours} * * *"
    return f"0 0 */{round(hours / 24)} * *"


# -- the schema ---------------------------------------------------------------------------

_RELEASE = re.compile(r"procrastinate schema (\d+)\.(\d+)\.(\d+)")


def _release(text_: str | None) -> tuple[int, int, int] | None:
    found = _RELEASE.search(text_ or "")
    return None if found is None else (int(found[1]), int(found[2]), int(found[3]))


def ensure_schema(db: Engine) -> str:
    """Create procrastinate's schema, or migrate it to the installed release; say what was
    done. Safe to run from several processes at once. Stop the workers before upgrading
    procrastinate itself: its pre- and post-deployment migrations are applied together."""
    installed_text = version("procrastinate")
    installed = _release(f"procrastinate schema {installed_text}")
    assert installed is not None
    comment = f"procrastinate schema {installed_text} (applied by leadbridge)"
    with psycopg.connect(libpq_url(db), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
        try:
            present = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
            if present is None or present[0] is None:
                with conn.transaction():
                    conn.execute(SchemaManager.get_schema())
                    conn.execute(_comment(comment))
                return f"procrastinate schema {installed_text} created"
            found = conn.execute("SELECT obj_description('procrastinate_jobs'::regclass, "
                                 "'pg_class')").fetchone()
            recorded = _release(found[0] if found else None)
            if recorded == installed:
                return f"procrastinate schema {installed_text} is up to date"
            pending = [] if recorded is None else [
                path for path in sorted(Path(SchemaManager.get_migrations_path()).glob("*.sql"))
                if recorded < _file_release(path) <= installed]
            for path in pending:  # each in its own transaction (ALTER TYPE ... ADD VALUE)
                with conn.transaction():
                    conn.execute(path.read_bytes())
            conn.execute(_comment(comment))
            if recorded is None:
                return (f"procrastinate schema found without a recorded release; recorded as "
                        f"{installed_text}")
            return f"procrastinate schema migrated to {installed_text} ({len(pending)} files)"
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))


def _comment(comment: str) -> psycopg.sql.Composed:
    return psycopg.sql.SQL("COMMENT ON TABLE procrastinate_jobs IS {}").format(
        psycopg.sql.Literal(comment))


def _file_release(path: Path) -> tuple[int, int, int]:
    major, minor, patch = path.name[:8].split(".")
    return int(major), int(minor), int(patch)


def _now() -> datetime:
    return datetime.now(UTC)
