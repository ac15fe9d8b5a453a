"""The one job interface: job kinds and their handlers, and what every runner promises.

Two runners keep the same promises (and pass one test module, `tests/jobs/test_jobs.py`):

- `InProcessJobs` (`jobs/inprocess.py`): a `jobs` table polled inside `leadbridge serve`;
  the default on SQLite, and it works on PostgreSQL too.
- `ProcrastinateJobs` (`jobs/procrastinate_runner.py`): procrastinate on PostgreSQL, run by
  any number of `leadbridge worker` processes on any number of machines.

The promises:

- `enqueue(kind, payload, key=..., run_at=..., conn=...)` returns the job's id, or None when
  a job with the same idempotency `key` is already waiting (a burst of "sync soon" requests
  becomes one job). With `conn`, the job is written in that transaction: it runs only if the
  data change it is about commits.
- A kind's lock (for a sync: the connection's name) is held by one running job at a time, on
  every process and machine: one cycle per connection at a time.
- A failing handler is retried after the kind's wait, up to its `max_attempts` runs, then the
  job is failed with the reason (secrets redacted). Errors a retry cannot fix (bad settings,
  bad input, a record that does not exist) fail the job at once.
- `schedule(kind, every_seconds)` defers the kind once per period however many processes run
  the runner (the periods are aligned to the clock, like cron).

Handlers are plain functions of `(JobContext, payload)`; they run in a worker thread. A job
runs once, unless its process stops mid-run: then it runs again (it counts as an attempt), so
a handler must be safe to repeat, as a sync cycle is.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol, TypeAlias

from sqlalchemy import Connection, Engine

from leadbridge.config import Settings
from leadbridge.connections import list_connections
from leadbridge.errors import ConfigError, InputError, LeadBridgeError, NotFound
from leadbridge.redact import install_redaction, redact
from leadbridge.sync.runner import sync_connections

log = logging.getLogger(__name__)

JSON: TypeAlias = str | int | float | bool | list["JSON"] | dict[str, "JSON"] | None
Payload: TypeAlias = dict[str, JSON]
JobState = Literal["waiting", "running", "done", "failed", "cancelled"]
MAX_ERROR_CHARS = 2000
SUPERSEDED = "not retried: a newer job with the same key is waiting and does the same work"
ABANDONED = "abandoned: the process running it stopped before it finished"
KEEP_DONE = timedelta(days=7)  # how long records of finished jobs are kept
KEEP_FAILED = timedelta(days=30)  # failed ones: long enough for a person to look


class UnknownJobKind(LeadBridgeError):
    """A job names a kind no handler is registered for (a typo, or a worker running an older
    release than the process that enqueued the job)."""


class SyncCycleFailed(LeadBridgeError):
    """A sync cycle ended in failure; the reasons are also in the connection's error queue."""


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a handler gets besides its payload: the hub's database and settings, the runner
    (to enqueue follow-up jobs), and which run of which job this is."""

    db: Engine
    settings: Settings
    jobs: Jobs
    job_id: int
    attempt: int  # 1 on the first run


Handler: TypeAlias = Callable[[JobContext, Payload], None]


def _no_lock(payload: Payload) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class JobKind:
    """A named kind of job: its handler, which lock a job of it takes, and its retry policy."""

    name: str
    handler: Handler
    lock: Callable[[Payload], str | None] = _no_lock
    max_attempts: int = 3  # runs in all, the first included
    retry_wait_seconds: int = 30


@dataclass(frozen=True, slots=True)
class JobStatus:
    """Where one job stands; `error` is the reason of its last failed run."""

    id: int
    kind: str
    state: JobState
    attempts: int
    error: str | None


class Jobs(Protocol):
    """What both runners offer (see the module docstring for the promises)."""

    runner: str  # "inprocess" | "procrastinate"

    def enqueue(self, kind: str, payload: Payload | None = None, *, key: str | None = None,
                run_at: datetime | None = None, conn: Connection | None = None) -> int | None:
        """Add a job; None if a job with the same `key` is already waiting."""
        ...

    def schedule(self, kind: str, every_seconds: float, payload: Payload | None = None) -> None:
        """Run `kind` every `every_seconds`, once per period across all processes."""
        ...

    def status(self, job_id: int) -> JobStatus:
        """The job's state, attempts and last error; NotFound if there is no such job."""
        ...

    async def run(self, *, concurrency: int = 2, until_idle: bool = False) -> None:
        """Run jobs until cancelled, or (`until_idle`) until none is due or running."""
        ...


KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    """Make a kind known to every runner of this process (handlers are looked up by name)."""
    if kind.max_attempts < 1:
        raise ValueError(f"job kind {kind.name!r}: max_attempts must be at least 1")
    KINDS[kind.name] = kind
    return kind


def kind_named(name: str) -> JobKind:
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownJobKind(f"no job kind {name!r} is registered (known: "
                             f"{', '.join(sorted(KINDS)) or 'none'})") from None


def check_job(kind: str, payload: Payload | None) -> tuple[JobKind, Payload, str | None]:
    """The kind, the payload and the job's lock, or an error naming what is wrong: raised
    when enqueueing, not later in a worker."""
    found = kind_named(kind)
    data: Payload = dict(payload or {})
    try:
        json.dumps(data)
    except (TypeError, ValueError) as exc:
        raise InputError(f"job {kind!r}: the payload is not JSON ({exc})") from None
    return found, data, found.lock(data)


_FATAL: tuple[type[BaseException], ...] = (ConfigError, InputError, NotFound, UnknownJobKind)


def retry_wait(kind: JobKind, exc: BaseException, attempt: int) -> int | None:
    """Seconds until the next run after run number `attempt` failed with `exc`, or None when
    the job has failed for good (attempts used up, or an error a retry cannot fix)."""
    if isinstance(exc, _FATAL) or attempt >= kind.max_attempts:
        return None
    return kind.retry_wait_seconds


def failure_reason(exc: BaseException) -> str:
    """The error as stored with the job: its type and message, secrets redacted, bounded."""
    text = f"{type(exc).__name__}: {exc}"
    return redact(text, install_redaction().secrets)[:MAX_ERROR_CHARS]


def sync_lock(connection_name: str) -> str:
    """The lock (and the natural idempotency key) of a connection's sync cycle."""
    return f"sync_connection:{connection_name}"


def _connection_lock(payload: Payload) -> str:
    name = payload.get("name")
    if not isinstance(name, str) or not name:
        raise InputError("job 'sync_connection' needs a payload {\"name\": <connection name>}")
    return sync_lock(name)


def _sync_connection(ctx: JobContext, payload: Payload) -> None:
    """One sync cycle of the connection named in the payload."""
    name = str(payload["name"])
    for outcome in sync_connections(ctx.db, ctx.settings, name):
        report = outcome.report
        if report is None:
            log.info("sync of %s skipped: another process is running its cycle", name)
        elif report.status == "budget_exhausted" and report.paused_until is not None:
            # the cycle stopped cleanly; it carries on once the budget allows
            resumed = ctx.jobs.enqueue("sync_connection", {"name": name}, key=sync_lock(name),
                                       run_at=report.paused_until)
            log.info("sync of %s paused (%s); %s", name, report.budget_message,
                     "resumes then" if resumed else "a waiting job carries on")
        elif report.status == "failed":
            raise SyncCycleFailed(f"sync of {name} failed: {'; '.join(report.failures)}")
        elif report.status == "partial":
            log.warning("sync of %s: some records failed (see `leadbridge sync errors`)", name)


def _sync_all(ctx: JobContext, payload: Payload) -> None:
    """A cycle for every enabled connection, each as its own job: the connections' cycles
    spread over the workers, and each keeps its own lock and retries."""
    with ctx.db.connect() as conn:
        names = [c.name for c in list_connections(conn) if c.enabled]
    for name in names:
        ctx.jobs.enqueue("sync_connection", {"name": name}, key=sync_lock(name))


register(JobKind("sync_connection", _sync_connection, lock=_connection_lock,
                 max_attempts=3, retry_wait_seconds=60))
register(JobKind("sync_all", _sync_all, max_attempts=3, retry_wait_seconds=30))
