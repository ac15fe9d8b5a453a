"""`leadbridge worker`: run background jobs (sync cycles) from the PostgreSQL job queue."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from typing import Annotated, Any

import typer

from leadbridge.cli.common import console, engine, err_console, friendly_errors, settings
from leadbridge.jobs import ensure_job_schema, open_jobs, schedule_sync
from leadbridge.store import upgrade

ON_SQLITE = (
    "leadbridge worker takes jobs from a PostgreSQL queue, and this hub uses SQLite: there "
    "`leadbridge serve` runs the jobs in-process, so there is nothing for a worker to do. To "
    "spread the work over several processes or machines, move the hub to PostgreSQL "
    "(LEADBRIDGE_DATABASE_URL=postgresql://...)."
)


@friendly_errors
def worker(
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="jobs run at the same time "
                                             "by this process")] = 2,
) -> None:
    """Run jobs from the PostgreSQL queue; start any number, on any number of machines."""
    cfg = settings()
    eng = engine(cfg)
    try:
        if eng.dialect.name != "postgresql":
            err_console.print(ON_SQLITE, highlight=False)
            raise typer.Exit(2)
        upgrade(eng)
        ensure_job_schema(eng)
        jobs = open_jobs(eng, cfg)
        schedule_sync(jobs, cfg)
        console.print(f"worker on {eng.url.render_as_string(hide_password=True)}, "
                      f"{concurrency} job(s) at a time; Ctrl+C or SIGTERM stops it once its "
                      "running jobs finish", highlight=False)
        asyncio.run(_until_stopped(jobs.run(concurrency=concurrency)))
    finally:
        eng.dispose()


async def _until_stopped(work: Coroutine[Any, Any, None]) -> None:
    """Run `work`; SIGTERM and SIGINT cancel it, which lets running jobs finish first."""
    task = asyncio.create_task(work)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
