"""The job interface, once for each runner: in-process (SQLite and PostgreSQL) and
procrastinate (PostgreSQL). The shared tests make identical assertions on every runner.

Handlers record each run as a line of JSON in a trace file named in the payload, so runs in
worker threads and in other processes are seen the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import psycopg
import pytest
from sqlalchemy import Connection, Engine, insert, select, text, update
from typer.testing import CliRunner

from leadbridge import connections as registry
from leadbridge.config import Settings
from leadbridge.connectors.memory import MemoryCRM
from leadbridge.errors import InputError
from leadbridge.jobs import (
    KINDS,
    JobContext,
    JobKind,
    Jobs,
    Payload,
    SyncSoon,
    UnknownJobKind,
    ensure_job_schema,
    open_jobs,
)
from leadbridge.jobs.inprocess import InProcessJobs, prune_finished
from leadbridge.jobs.procrastinate_runner import ProcrastinateJobs, cron_for
from leadbridge.keyring import load_keyring
from leadbridge.store import make_engine
from leadbridge.store.state import get_state, set_state
from leadbridge.store.tables import connections, contacts
from leadbridge.store.tables import jobs as jobs_table
from support import scalar, wait_for

RUNNERS = pytest.mark.parametrize(
    ("runner", "db_url"),
    [("inprocess", "sqlite"), ("inprocess", "postgresql"), ("procrastinate", "postgresql")],
    indirect=["db_url"], ids=["inprocess-sqlite", "inprocess-postgresql", "procrastinate"])
PROCRASTINATE_TABLES = ("procrastinate_events, procrastinate_periodic_defers, "
                        "procrastinate_jobs, procrastinate_workers")


# -- job kinds used by the tests (also loaded by the worker subprocesses) ---------------------

def _trace(path: str, **entry: Any) -> None:
    with open(path, "a", encoding="utf-8") as out:  # one short append per run: atomic
        out.write(json.dumps(entry) + "\n")


def _record(ctx: JobContext, payload: Payload) -> None:
    """Record the run; read a hub_state value, take a while or fail when the payload asks."""
    start = time.time()
    seen = None
    if isinstance(key := payload.get("read_state"), str):
        with ctx.db.connect() as conn:
            seen = get_state(conn, key)
    sleep, fail_runs = payload.get("sleep", 0), payload.get("fail_runs", 0)
    assert isinstance(sleep, int | float) and isinstance(fail_runs, int)
    time.sleep(sleep)
    _trace(str(payload["trace"]), job=ctx.job_id, attempt=ctx.attempt,
           runner=f"{os.getpid()}:{id(ctx.jobs):x}", n=payload.get("n"), seen=seen,
           start=start, end=time.time())
    if fail_runs >= ctx.attempt:
        raise RuntimeError(f"CRM said no (run {ctx.attempt})")


def _refuse(ctx: JobContext, payload: Payload) -> None:
    _trace(str(payload["trace"]), job=ctx.job_id, attempt=ctx.attempt)
    raise InputError("the mapping names a field the CRM does not have")


TEST_KINDS = [
    JobKind("test.record", _record, max_attempts=3, retry_wait_seconds=0),
    JobKind("test.refuse", _refuse, max_attempts=3, retry_wait_seconds=0),
]


def runs(trace: Path) -> list[dict[str, Any]]:
    if not trace.exists():
        return []
    return [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]


# -- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def procrastinate_schema(pg_url: str) -> str:
    eng = make_engine(pg_url)
    try:
        ensure_job_schema(eng)
    finally:
        eng.dispose()
    return pg_url


@pytest.fixture
def jobs(runner: str, engine: Engine, settings: Settings, request: pytest.FixtureRequest,
         monkeypatch: pytest.MonkeyPatch) -> Jobs:
    """The runner under test, polling fast; the test kinds registered."""
    for kind in TEST_KINDS:
        monkeypatch.setitem(KINDS, kind.name, kind)
    if runner == "inprocess":
        return InProcessJobs(engine, settings, poll_seconds=0.05)
    request.getfixturevalue("procrastinate_schema")
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {PROCRASTINATE_TABLES} RESTART IDENTITY CASCADE")
    return ProcrastinateJobs(engine, settings, poll_seconds=0.1)


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    return tmp_path / "trace.jsonl"


def drain(jobs: Jobs, concurrency: int = 2) -> None:
    """Run jobs until none is due or running."""
    asyncio.run(asyncio.wait_for(jobs.run(concurrency=concurrency, until_idle=True), 20))


def run_for(seconds: float, *runners: Jobs) -> None:
    """Run every runner side by side for a while, then stop them."""
    async def together() -> None:
        tasks = [asyncio.create_task(r.run(concurrency=2)) for r in runners]
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(together())


# -- the shared tests -----------------------------------------------------------------------------

@RUNNERS
def test_an_enqueued_job_runs_its_handler_once(jobs: Jobs, trace: Path) -> None:
    job = jobs.enqueue("test.record", {"trace": str(trace), "n": 7})
    assert job is not None and jobs.status(job).state == "waiting"
    drain(jobs)
    assert [(r["job"], r["n"], r["attempt"]) for r in runs(trace)] == [(job, 7, 1)]
    status = jobs.status(job)
    assert (status.kind, status.state, status.attempts, status.error) == (
        "test.record", "done", 1, None)


@RUNNERS
def test_the_same_key_twice_runs_once_and_again_once_it_ran(jobs: Jobs, trace: Path) -> None:
    first = jobs.enqueue("test.record", {"trace": str(trace), "n": 1}, key="sync:tiny")
    second = jobs.enqueue("test.record", {"trace": str(trace), "n": 2}, key="sync:tiny")
    other = jobs.enqueue("test.record", {"trace": str(trace), "n": 3}, key="sync:other")
    assert first is not None and second is None and other is not None
    drain(jobs)
    assert sorted(r["n"] for r in runs(trace)) == [1, 3]
    again = jobs.enqueue("test.record", {"trace": str(trace), "n": 4}, key="sync:tiny")
    assert again is not None  # the key holds only while a job waits
    drain(jobs)
    assert sorted(r["n"] for r in runs(trace)) == [1, 3, 4]


@RUNNERS
def test_a_job_enqueued_in_a_rolled_back_transaction_never_runs(
        jobs: Jobs, engine: Engine, trace: Path) -> None:
    with engine.connect() as conn:
        conn.begin()
        set_state(conn, "test.fact", "42")
        assert jobs.enqueue("test.record", {"trace": str(trace)}, key="fact", conn=conn)
        conn.rollback()
    drain(jobs)
    assert runs(trace) == []
    # the rolled-back job does not hold its key either
    assert jobs.enqueue("test.record", {"trace": str(trace)}, key="fact") is not None


@RUNNERS
def test_a_job_enqueued_in_a_committed_transaction_runs_and_sees_the_change(
        jobs: Jobs, engine: Engine, trace: Path) -> None:
    with engine.connect() as conn:
        conn.begin()
        set_state(conn, "test.fact", "42")
        job = jobs.enqueue("test.record", {"trace": str(trace), "read_state": "test.fact"},
                           conn=conn)
        conn.commit()
    drain(jobs)
    assert [(r["job"], r["seen"]) for r in runs(trace)] == [(job, "42")]


@RUNNERS
def test_two_sync_jobs_of_one_connection_never_overlap(
        jobs: Jobs, trace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def cycle(ctx: JobContext, payload: Payload) -> None:
        start = time.time()
        time.sleep(0.3)
        _trace(str(trace), name=payload["name"], start=start, end=time.time())

    monkeypatch.setitem(KINDS, "sync_connection", replace(KINDS["sync_connection"],
                                                          handler=cycle))
    for name in ("tiny", "tiny", "other"):
        jobs.enqueue("sync_connection", {"name": name})  # no key: both "tiny" jobs wait
    drain(jobs, concurrency=3)
    done = runs(trace)
    tiny = sorted((r["start"], r["end"]) for r in done if r["name"] == "tiny")
    other = [(r["start"], r["end"]) for r in done if r["name"] == "other"]
    assert len(tiny) == 2 and len(other) == 1
    assert tiny[0][1] <= tiny[1][0], "two cycles of one connection overlapped"
    # and jobs did run side by side: "other" overlapped a "tiny" cycle
    assert any(s < other[0][1] and other[0][0] < e for s, e in tiny)


@RUNNERS
def test_a_failing_job_is_retried_up_to_its_limit_then_failed_with_the_reason(
        jobs: Jobs, trace: Path) -> None:
    hopeless = jobs.enqueue("test.record", {"trace": str(trace), "n": 1, "fail_runs": 99})
    flaky = jobs.enqueue("test.record", {"trace": str(trace), "n": 2, "fail_runs": 1})
    refused = jobs.enqueue("test.refuse", {"trace": str(trace)})
    assert hopeless and flaky and refused
    drain(jobs)
    attempts = {job: [r["attempt"] for r in runs(trace) if r["job"] == job]
                for job in (hopeless, flaky, refused)}
    assert attempts == {hopeless: [1, 2, 3], flaky: [1, 2], refused: [1]}
    failed = jobs.status(hopeless)
    assert (failed.state, failed.attempts) == ("failed", 3)
    assert failed.error == "RuntimeError: CRM said no (run 3)"
    assert jobs.status(flaky).state == "done"
    assert jobs.status(flaky).error == "RuntimeError: CRM said no (run 1)"  # the last failure
    # an error no retry can fix fails the job at once
    fatal = jobs.status(refused)
    assert (fatal.state, fatal.attempts) == ("failed", 1)
    assert fatal.error == "InputError: the mapping names a field the CRM does not have"


@RUNNERS
def test_bad_jobs_are_refused_when_enqueued(jobs: Jobs) -> None:
    with pytest.raises(UnknownJobKind, match="sync_conection"):
        jobs.enqueue("sync_conection", {"name": "tiny"})
    with pytest.raises(InputError, match="name"):
        jobs.enqueue("sync_connection", {})
    with pytest.raises(InputError, match="not JSON"):
        jobs.enqueue("test.record", {"when": datetime.now(UTC)})  # type: ignore[dict-item]


@RUNNERS
def test_a_schedule_runs_once_per_period_however_many_runners(
        jobs: Jobs, runner: str, engine: Engine, settings: Settings, trace: Path) -> None:
    twin = (InProcessJobs(engine, settings, poll_seconds=0.05) if runner == "inprocess"
            else ProcrastinateJobs(engine, settings, poll_seconds=0.1))
    for each in (jobs, twin):
        each.schedule("test.record", every_seconds=1, payload={"trace": str(trace)})
    began = time.time()
    run_for(1.9, jobs, twin)
    periods = int(time.time()) - int(began) + 1  # clock-aligned periods the run touched
    assert 2 <= len(runs(trace)) <= periods  # twice as many if each runner deferred its own


@RUNNERS
def test_sync_jobs_run_real_cycles_and_sync_all_fans_out_per_connection(
        jobs: Jobs, engine: Engine, settings: Settings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    crm = MemoryCRM(batch_size=10)
    monkeypatch.setitem(registry._FACTORIES, "memory", lambda settings, credentials: crm)
    now = datetime(2026, 11, 20, tzinfo=UTC)
    with engine.begin() as conn:
        registry.add_connection(conn, load_keyring(settings), "tiny", "memory", {}, {})
        conn.execute(insert(contacts).values(email="ann@example.com", name="Ann",
                                             created_at=now, updated_at=now, hit_count=0,
                                             score_weight=0.0))
    assert jobs.enqueue("sync_all", {}) is not None
    drain(jobs)
    assert [r["email"] for r in crm.records["contacts"].values()] == ["ann@example.com"]
    assert scalar(engine, "SELECT count(*) FROM sync_runs WHERE status = 'ok'") == 1


@RUNNERS
def test_two_workers_share_the_jobs_and_run_each_once(
        jobs: Jobs, runner: str, engine: Engine, settings: Settings, tmp_path: Path,
        trace: Path) -> None:
    """procrastinate: two `leadbridge worker` processes; in-process: two runners with
    engines of their own, as two `serve` processes would be."""
    workers: list[_Worker] = []
    try:
        for index in range(2):
            workers.append(_ProcessWorker(settings, tmp_path, index) if runner == "procrastinate"
                           else _ThreadWorker(settings))
        if runner == "procrastinate":
            wait_for(lambda: scalar(engine, "SELECT count(*) FROM procrastinate_workers") == 2,
                     20)
        ids = [job for n in range(20)
               if (job := jobs.enqueue("test.record",
                                       {"trace": str(trace), "n": n, "sleep": 0.05}))]
        assert len(ids) == 20
        wait_for(lambda: len(runs(trace)) >= 20, 20)
        time.sleep(0.2)  # a second run of some job, if there were one, would show up now
        done = runs(trace)
        assert sorted(r["job"] for r in done) == sorted(ids)
        assert len({r["runner"] for r in done}) == 2, "one worker did all the work"
        assert {jobs.status(job).state for job in ids} == {"done"}
    finally:
        codes = [worker.finish() for worker in workers]
    assert codes == [0, 0], "workers stop cleanly (`leadbridge worker`: on SIGTERM)"


@RUNNERS
def test_a_cycle_stopped_by_the_budget_is_queued_again_for_when_it_resumes(
        jobs: Jobs, engine: Engine, settings: Settings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    crm = MemoryCRM(batch_size=10)
    reset = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    crm.rate_limit(1, limit=100, reset_at=reset)  # one call left: the report page
    monkeypatch.setitem(registry._FACTORIES, "memory", lambda settings, credentials: crm)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        registry.add_connection(conn, load_keyring(settings), "tiny", "memory", {}, {})
        conn.execute(insert(contacts).values(email="ann@example.com", name="Ann",
                                             created_at=now, updated_at=now, hit_count=0,
                                             score_weight=0.0))
    job = jobs.enqueue("sync_connection", {"name": "tiny"})
    assert job is not None
    drain(jobs)
    assert jobs.status(job).state == "done"  # paused is not failed: no retries
    assert crm.calls == 1 and crm.records["contacts"] == {}
    assert scalar(engine, "SELECT status FROM sync_runs") == "budget_exhausted"
    if jobs.runner == "inprocess":
        sql = "SELECT run_at FROM jobs WHERE status = 'waiting' AND kind = 'sync_connection'"
    else:
        sql = ("SELECT scheduled_at FROM procrastinate_jobs WHERE status = 'todo' "
               "AND task_name = 'sync_connection'")
    with engine.connect() as conn:
        [resume] = conn.execute(text(sql)).scalars().all()
    if isinstance(resume, str):  # SQLite
        resume = datetime.fromisoformat(resume)
    assert abs((resume.replace(tzinfo=resume.tzinfo or UTC) - reset).total_seconds()) < 1


@RUNNERS
def test_sync_soon_asks_once_per_enabled_connection_with_the_events_transaction(
        jobs: Jobs, engine: Engine, settings: Settings) -> None:
    keyring = load_keyring(settings)
    with engine.begin() as conn:
        for name in ("alpha", "beta", "off"):
            registry.add_connection(conn, keyring, name, "memory", {}, {})
        conn.execute(update(connections).where(connections.c.name == "off")
                     .values(enabled=False))
    soon = SyncSoon(jobs, delay_seconds=30)
    with engine.connect() as conn:
        conn.begin()
        soon(conn)
        conn.rollback()  # the batch failed: no push is asked for
    assert waiting_sync_jobs(engine, jobs) == []
    for _ in range(3):  # a burst of events: one job per connection
        with engine.connect() as conn:
            conn.begin()
            soon(conn)
            conn.commit()
    assert waiting_sync_jobs(engine, jobs) == ["alpha", "beta"]


@RUNNERS
def test_a_refusing_job_queue_does_not_cost_the_batch_its_data(
        jobs: Jobs, engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with engine.begin() as conn:
        registry.add_connection(conn, load_keyring(settings), "alpha", "memory", {}, {})

    def refuse(*args: object, conn: Connection, **kwargs: object) -> None:
        conn.execute(text("SELECT * FROM no_such_table"))  # PostgreSQL: aborts the transaction

    monkeypatch.setattr(jobs, "enqueue", refuse)
    with engine.connect() as conn:
        conn.begin()
        set_state(conn, "test.hits", "stored")
        SyncSoon(jobs, delay_seconds=1)(conn)
        set_state(conn, "test.after", "stored too")  # the transaction is still usable
        conn.commit()
    with engine.connect() as conn:
        assert (get_state(conn, "test.hits"), get_state(conn, "test.after")) == (
            "stored", "stored too")


def waiting_sync_jobs(engine: Engine, jobs: Jobs) -> list[str]:
    """Names of the connections with a waiting sync job, in either runner's queue."""
    if jobs.runner == "inprocess":
        sql = ("SELECT payload FROM jobs WHERE kind = 'sync_connection' AND status = 'waiting' "
               "ORDER BY id")
    else:
        sql = ("SELECT args->'payload' FROM procrastinate_jobs WHERE task_name = "
               "'sync_connection' AND status = 'todo' ORDER BY id")
    with engine.connect() as conn:
        found = [row[0] for row in conn.execute(text(sql))]
    return sorted((json.loads(p) if isinstance(p, str) else p)["name"] for p in found)


# -- runner-specific behaviour ------------------------------------------------------------------

def test_worker_on_sqlite_explains_that_serve_runs_jobs_and_exits_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from leadbridge.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["worker"], env={
        "LEADBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}", "LEADBRIDGE_CONFIG": None})
    assert result.exit_code == 2
    assert "leadbridge serve" in result.output and "in-process" in result.output


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_open_jobs_picks_procrastinate_on_postgresql_and_in_process_on_sqlite(
        engine: Engine, settings: Settings, db_url: str) -> None:
    expected = "procrastinate" if db_url.startswith("postgresql") else "inprocess"
    assert open_jobs(engine, settings).runner == expected
    assert open_jobs(engine, settings, "inprocess").runner == "inprocess"


def test_ensure_job_schema_is_idempotent(procrastinate_schema: str) -> None:
    eng = make_engine(procrastinate_schema)
    try:
        assert ensure_job_schema(eng) == "procrastinate schema " + _procrastinate_version() + \
            " is up to date"
    finally:
        eng.dispose()


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_in_process_job_left_running_by_a_stopped_process_runs_again(
        engine: Engine, settings: Settings, trace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for kind in TEST_KINDS:
        monkeypatch.setitem(KINDS, kind.name, kind)
    gone = InProcessJobs(engine, settings, lease_seconds=0.2)
    job = gone.enqueue("test.record", {"trace": str(trace)})
    assert job is not None and gone._claim() is not None  # claimed, then the process "dies"
    time.sleep(0.3)
    drain(InProcessJobs(engine, settings, poll_seconds=0.05, lease_seconds=0.2))
    assert [(r["job"], r["attempt"]) for r in runs(trace)] == [(job, 2)]


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_records_of_long_finished_jobs_are_pruned(engine: Engine) -> None:
    now = datetime.now(UTC)
    rows = [("done", now - timedelta(days=8)), ("done", now - timedelta(days=1)),
            ("failed", now - timedelta(days=8)), ("failed", now - timedelta(days=31)),
            ("waiting", None)]
    with engine.begin() as conn:
        conn.execute(insert(jobs_table), [
            {"kind": "sync_all", "payload": {}, "status": status, "attempts": 1,
             "max_attempts": 3, "run_at": now, "created_at": now, "finished_at": finished}
            for status, finished in rows])
        assert prune_finished(conn, now) == 2
    with engine.connect() as conn:
        left = {(r.status, r.finished_at and (now - r.finished_at).days) for r in
                conn.execute(select(jobs_table.c.status, jobs_table.c.finished_at))}
    assert left == {("done", 1), ("failed", 8), ("waiting", None)}


def test_cron_for_a_period() -> None:
    assert [cron_for(s) for s in (1, 30, 300, 7 * 60, 7200, 2 * 86400)] == [
        "* * * * * */1", "* * * * * */30", "*/5 * * * *", "*/7 * * * *", "0 */2 * * *",
        "0 0 */2 * *"]


# -- helpers --------------------------------------------------------------------------------------

BOOT = """
import importlib.util, sys
sys.path[:0] = [{tests!r}]
spec = importlib.util.spec_from_file_location("leadbridge_job_tests", {module!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from leadbridge.cli import app
from leadbridge.jobs import register
for kind in module.TEST_KINDS:
    register(kind)
app(["worker", "--concurrency", "1"])
"""


class _Worker(Protocol):
    def finish(self) -> int: ...


class _ProcessWorker:
    """`leadbridge worker` in a process of its own, knowing the test job kinds."""

    def __init__(self, settings: Settings, tmp_path: Path, index: int) -> None:
        here = Path(__file__).resolve()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEADBRIDGE_")}
        env.update(LEADBRIDGE_DATABASE_URL=settings.database_url,
                   LEADBRIDGE_SECRET_KEY=settings.secret_key,
                   LEADBRIDGE_DATA_DIR=str(tmp_path / "var"))
        self.log = tmp_path / f"worker-{index}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", BOOT.format(tests=str(here.parent.parent),
                                                   module=str(here))],
                env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)

    def finish(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(15)
        if code != 0:
            print(self.log.read_text(encoding="utf-8", errors="replace"))
        return code


class _ThreadWorker:
    """An in-process runner with an engine of its own, on an event loop in its own thread."""

    def __init__(self, settings: Settings) -> None:
        self.engine = make_engine(settings.database_url)
        self.jobs = InProcessJobs(self.engine, settings, poll_seconds=0.05)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=asyncio.run, args=(self._run(),))
        self.thread.start()

    async def _run(self) -> None:
        work = asyncio.create_task(self.jobs.run(concurrency=1))
        await asyncio.to_thread(self.stop.wait)
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work

    def finish(self) -> int:
        self.stop.set()
        self.thread.join(15)
        self.engine.dispose()
        return 1 if self.thread.is_alive() else 0


def _procrastinate_version() -> str:
    from importlib.metadata import version

    return version("procrastinate")
