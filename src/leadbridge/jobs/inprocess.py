"""The in-process runner: jobs in the hub's own `jobs` table, run by `leadbridge serve`.

The default on SQLite, where there is one machine and no job server to run. It also works
on PostgreSQL, and several processes may run it against one database (`serve --workers 4`):
a job is claimed with a compare-and-set (SQLite's write lock; PostgreSQL's
`FOR UPDATE SKIP LOCKED`), a partial unique index allows one running job per lock and one
waiting job per idempotency key, and a running job holds a lease that its process renews,
so the job of a process that stopped is run again (or failed, when out of attempts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from leadbridge.config import Settings
from leadbridge.errors import NotFound
from leadbridge.jobs.interface import (
    ABANDONED,
    KEEP_DONE,
    KEEP_FAILED,
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
from leadbridge.store.db import writing
from leadbridge.store.tables import hub_state, jobs

log = logging.getLogger(__name__)
RECOVER = 5.0  # seconds before trying again when the database is unreachable
PRUNE_EVERY = 3600.0  # seconds between deletions of long-finished jobs


def worker_name() -> str:
    """Host, process and a random suffix: which process holds a running job."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"[:100]


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: int
    kind: str
    payload: Payload
    key: str | None
    attempt: int


class InProcessJobs:
    """Jobs in the `jobs` table, run by `run()` on the event loop of the process (handlers
    run in a thread pool of `concurrency` threads)."""

    runner = "inprocess"

    def __init__(self, db: Engine, settings: Settings, *, poll_seconds: float = 1.0,
                 lease_seconds: float = 60.0) -> None:
        self.db = db
        self.settings = settings
        self.poll_seconds = poll_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.worker = worker_name()
        self._schedules: dict[str, tuple[float, Payload]] = {}
        self._periods: dict[str, str] = {}  # per schedule, the last period seen deferred
        self._held: set[int] = set()
        self._held_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None

    # -- the interface ---------------------------------------------------------------------

    def enqueue(self, kind: str, payload: Payload | None = None, *, key: str | None = None,
                run_at: datetime | None = None, conn: Connection | None = None) -> int | None:
        """Add a job; None if a job with the same `key` is already waiting. With `conn`, the
        job is part of that transaction."""
        found, data, lock = check_job(kind, payload)
        now = _now()
        values = {"kind": found.name, "payload": data, "key": key, "lock": lock,
                  "status": "waiting", "attempts": 0, "max_attempts": found.max_attempts,
                  "run_at": run_at or now, "created_at": now}
        if conn is not None:
            return _insert(conn, values)
        with writing(self.db) as own:
            job_id = _insert(own, values)
        if job_id is not None:
            self._wake()
        return job_id

    def schedule(self, kind: str, every_seconds: float, payload: Payload | None = None) -> None:
        """Enqueue `kind` once per period of `every_seconds` (aligned to the clock), however
        many processes run this runner; a later call for the same kind replaces it."""
        if every_seconds < 1:
            raise ValueError("a schedule needs a period of at least one second")
        _, data, _ = check_job(kind, payload)
        self._schedules[kind] = (float(every_seconds), data)

    def status(self, job_id: int) -> JobStatus:
        with self.db.connect() as conn:
            row = conn.execute(
                select(jobs.c.id, jobs.c.kind, jobs.c.status, jobs.c.attempts, jobs.c.error)
                .where(jobs.c.id == job_id, jobs.c.procrastinate_id.is_(None))
            ).first()
        if row is None:
            raise NotFound(f"no job {job_id}")
        state: JobState = row.status
        return JobStatus(row.id, row.kind, state, row.attempts, row.error)

    async def run(self, *, concurrency: int = 2, until_idle: bool = False) -> None:
        """Claim and run due jobs, `concurrency` at a time, until cancelled; with
        `until_idle`, return once no job is due or running (tests, one-off drains)."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix="leadbridge-job")
        slots = asyncio.Semaphore(concurrency)
        running: set[asyncio.Future[None]] = set()
        side = [asyncio.create_task(self._keep_leases()),
                asyncio.create_task(self._defer_scheduled())]
        try:
            while True:
                await slots.acquire()
                try:
                    claimed = await asyncio.to_thread(self._claim)
                    idle = (until_idle and claimed is None and not running
                            and await asyncio.to_thread(self._idle))
                except Exception:
                    if until_idle:
                        raise
                    slots.release()
                    log.exception("no job could be claimed; trying again in %.0f s", RECOVER)
                    await asyncio.sleep(RECOVER)
                    continue
                if claimed is None:
                    slots.release()
                    if idle:
                        return
                    await self._sleep(self.poll_seconds)
                    continue
                done = self._loop.run_in_executor(pool, self._execute, claimed)
                running.add(done)

                def finished(future: asyncio.Future[None]) -> None:
                    running.discard(future)
                    slots.release()
                    self._wake()

                done.add_done_callback(finished)
        finally:
            for task in side:
                task.cancel()
            # a handler cannot be interrupted: it finishes and records its outcome itself
            pool.shutdown(wait=False, cancel_futures=True)
            self._loop = self._wakeup = None

    # -- claiming and running ----------------------------------------------------------------

    def _claim(self) -> _Claimed | None:
        """Take the oldest due job whose lock is free, or None."""
        running = jobs.alias("running")
        lock_free = or_(jobs.c.lock.is_(None), ~exists().where(
            running.c.lock == jobs.c.lock, running.c.status == "running"))
        with self.db.connect() as conn:  # a read first: an idle poll takes no write lock
            if conn.execute(select(jobs.c.id).where(
                    jobs.c.status == "waiting", jobs.c.run_at <= _now(),
                    jobs.c.procrastinate_id.is_(None)).limit(1)).first() is None:
                return None
        for _ in range(3):
            now = _now()
            try:
                with writing(self.db) as conn:
                    row = conn.execute(
                        select(jobs.c.id, jobs.c.kind, jobs.c.payload, jobs.c.key,
                               jobs.c.attempts)
                        .where(jobs.c.status == "waiting", jobs.c.run_at <= now,
                               jobs.c.procrastinate_id.is_(None), lock_free)
                        .order_by(jobs.c.run_at, jobs.c.id).limit(1)
                        .with_for_update(skip_locked=True, of=jobs)
                    ).first()
                    if row is None:
                        return None
                    conn.execute(update(jobs).where(jobs.c.id == row.id).values(
                        status="running", attempts=jobs.c.attempts + 1, started_at=now,
                        lease_until=now + self.lease, worker=self.worker))
            except IntegrityError:
                continue  # another process took a job with the same lock at the same moment
            with self._held_lock:
                self._held.add(row.id)
            return _Claimed(row.id, row.kind, row.payload, row.key, row.attempts + 1)
        return None

    def _execute(self, job: _Claimed) -> None:
        """Run one claimed job's handler and record how it ended (in a pool thread)."""
        kind: JobKind | None = None
        try:
            try:
                kind = kind_named(job.kind)
                kind.handler(JobContext(self.db, self.settings, self, job.id, job.attempt),
                             job.payload)
            except Exception as exc:
                self._failed(job, kind, exc)
            else:
                with writing(self.db) as conn:
                    conn.execute(update(jobs).where(jobs.c.id == job.id).values(
                        status="done", finished_at=_now(), lease_until=None))
        except Exception:  # the outcome could not be written: the lease will bring it back
            log.exception("job %s %d: its outcome could not be recorded", job.kind, job.id)
        finally:
            with self._held_lock:
                self._held.discard(job.id)

    def _failed(self, job: _Claimed, kind: JobKind | None, exc: Exception) -> None:
        reason = failure_reason(exc)
        wait = None if kind is None else retry_wait(kind, exc, job.attempt)
        now = _now()
        if wait is not None:
            try:
                with writing(self.db) as conn:
                    conn.execute(update(jobs).where(jobs.c.id == job.id).values(
                        status="waiting", run_at=now + timedelta(seconds=wait), error=reason,
                        worker=None, lease_until=None))
                log.warning("job %s %d failed (run %d), retried in %d s: %s",
                            job.kind, job.id, job.attempt, wait, reason)
                return
            except IntegrityError:
                reason = f"{reason} ({SUPERSEDED})"
        with writing(self.db) as conn:
            conn.execute(update(jobs).where(jobs.c.id == job.id).values(
                status="failed", finished_at=now, error=reason, lease_until=None))
        log.error("job %s %d failed after %d run(s): %s", job.kind, job.id, job.attempt, reason)

    def _idle(self) -> bool:
        with self.db.connect() as conn:
            busy = conn.execute(select(func.count()).select_from(jobs).where(
                jobs.c.procrastinate_id.is_(None),
                or_(jobs.c.status == "running",
                    and_(jobs.c.status == "waiting", jobs.c.run_at <= _now())))).scalar_one()
        return int(busy) == 0

    # -- leases and schedules ----------------------------------------------------------------

    async def _keep_leases(self) -> None:
        """Renew the leases of this process's running jobs, give back the jobs of processes
        that stopped, and (hourly) delete the records of long-finished jobs."""
        every = max(self.lease.total_seconds() / 4, 0.05)
        pruned = 0.0
        while True:
            try:
                await asyncio.to_thread(self._renew_and_reclaim)
                if time.monotonic() - pruned > PRUNE_EVERY:
                    await asyncio.to_thread(self._prune)
                    pruned = time.monotonic()
            except Exception:
                log.exception("job upkeep failed; trying again")
            await asyncio.sleep(every)

    def _prune(self) -> None:
        with writing(self.db) as conn:
            prune_finished(conn, _now())

    def _renew_and_reclaim(self) -> None:
        now = _now()
        with self._held_lock:
            held = list(self._held)
        if held:
            with writing(self.db) as conn:
                conn.execute(update(jobs).where(jobs.c.id.in_(held), jobs.c.status == "running")
                             .values(lease_until=now + self.lease))
        lapsed_now = (jobs.c.status == "running", jobs.c.lease_until < now,
                      jobs.c.procrastinate_id.is_(None))
        with self.db.connect() as conn:  # a read first: most of the time nothing lapsed
            if conn.execute(select(jobs.c.id).where(*lapsed_now).limit(1)).first() is None:
                return
        with writing(self.db) as conn:
            lapsed = conn.execute(select(jobs.c.id, jobs.c.attempts, jobs.c.max_attempts)
                                  .where(*lapsed_now)).all()
            for row in lapsed:
                again = row.attempts < row.max_attempts
                if again:
                    try:
                        with conn.begin_nested():
                            conn.execute(update(jobs).where(jobs.c.id == row.id).values(
                                status="waiting", run_at=now, error=ABANDONED, worker=None,
                                lease_until=None))
                        continue
                    except IntegrityError:
                        pass
                conn.execute(update(jobs).where(jobs.c.id == row.id).values(
                    status="failed", finished_at=now, lease_until=None,
                    error=ABANDONED if not again else f"{ABANDONED} ({SUPERSEDED})"))
        if lapsed:
            log.warning("%d job(s) left running by a stopped process were taken back",
                        len(lapsed))

    async def _defer_scheduled(self) -> None:
        while True:
            for kind, (every, payload) in list(self._schedules.items()):
                try:
                    await asyncio.to_thread(self._defer_if_due, kind, every, payload)
                except Exception:
                    log.exception("scheduled job %s could not be enqueued; trying again", kind)
            await asyncio.sleep(min(1.0, min((e for e, _ in self._schedules.values()),
                                             default=1.0) / 4))

    def _defer_if_due(self, kind: str, every: float, payload: Payload) -> None:
        """Enqueue `kind` for the current period unless some process already did: the period
        number is compare-and-set in `hub_state`, in the same transaction as the job."""
        period = f"{int(_now().timestamp() // every):020d}"
        if self._periods.get(kind) == period:
            return
        state_key = f"jobs.every.{kind}"
        with writing(self.db) as conn:
            ins = _dialect_insert(conn)(hub_state).values(key=state_key, value=period)
            won = conn.execute(ins.on_conflict_do_update(
                index_elements=[hub_state.c.key], set_={"value": period},
                where=hub_state.c.value < period).returning(hub_state.c.key)).first() is not None
            if won:
                self.enqueue(kind, payload, key=f"every:{kind}", conn=conn)
        self._periods[kind] = period  # deferred, here or by another process
        if won:
            self._wake()

    # -- waking up ---------------------------------------------------------------------------

    def _wake(self) -> None:
        """Cut the poll short (safe from any thread)."""
        loop, event = self._loop, self._wakeup
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(event.set)

    async def _sleep(self, seconds: float) -> None:
        assert self._wakeup is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)
        self._wakeup.clear()


def _now() -> datetime:
    return datetime.now(UTC)


def prune_finished(conn: Connection, now: datetime) -> int:
    """Delete the records of jobs done more than `KEEP_DONE` ago and failed more than
    `KEEP_FAILED` ago (either runner's), so the table does not grow for ever."""
    return conn.execute(delete(jobs).where(or_(
        and_(jobs.c.status == "done", jobs.c.finished_at < now - KEEP_DONE),
        and_(jobs.c.status == "failed", jobs.c.finished_at < now - KEEP_FAILED)))).rowcount


def _dialect_insert(conn: Connection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _insert(conn: Connection, values: dict[str, Any]) -> int | None:
    """Insert a waiting job; None if one with the same key is already waiting."""
    stmt = (_dialect_insert(conn)(jobs).values(**values)
            .on_conflict_do_nothing(index_elements=[jobs.c.key],
                                    index_where=text("status = 'waiting'"))
            .returning(jobs.c.id))
    job_id = conn.execute(stmt).scalar()
    return None if job_id is None else int(job_id)
