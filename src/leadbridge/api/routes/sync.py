"""Sync: the error queue people act on, the run log, and a cycle on demand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sqlalchemy import select

from leadbridge.api.deps import ConnDep, CurrentKey, HubDep
from leadbridge.store.tables import sync_runs
from leadbridge.sync import errorqueue
from leadbridge.sync.runner import sync_connections

router = APIRouter(prefix="/api/v1/sync", tags=["sync"])


class SyncRunPublic(BaseModel):
    id: int
    connection_id: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    counts: dict[str, dict[str, int]]
    api_calls: int
    message: str | None


class PlannedChangePublic(BaseModel):
    direction: str
    object: str
    operation: str
    key: str
    why: str


class CyclePublic(BaseModel):
    connection: str
    skipped: bool  # another process was running this connection's cycle
    run_id: int | None = None
    status: str | None = None
    counts: dict[str, dict[str, int]] = {}
    api_calls: int = 0
    failures: list[str] = []
    plan: list[PlannedChangePublic] = []


@router.get("/errors", response_model=list[errorqueue.SyncErrorRow])
def get_errors(conn: ConnDep, _key: CurrentKey,
               status: Annotated[str | None, Query(pattern="^(open|dismissed|resolved|all)$")]
               = "open") -> list[errorqueue.SyncErrorRow]:
    return errorqueue.list_errors(conn, status=None if status == "all" else status)


@router.post("/errors/{error_id}/retry", status_code=204)
def post_retry(error_id: int, conn: ConnDep, _key: CurrentKey) -> None:
    errorqueue.retry_now(conn, error_id, datetime.now(UTC))


@router.post("/errors/{error_id}/dismiss", status_code=204)
def post_dismiss(error_id: int, conn: ConnDep, _key: CurrentKey) -> None:
    errorqueue.dismiss(conn, error_id)


@router.get("/runs", response_model=list[SyncRunPublic])
def get_runs(conn: ConnDep, _key: CurrentKey,
             limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[SyncRunPublic]:
    rows = conn.execute(select(sync_runs).order_by(sync_runs.c.id.desc()).limit(limit))
    return [SyncRunPublic(**{f: getattr(r, f) for f in SyncRunPublic.model_fields})
            for r in rows]


@router.post("/{connection}/run", response_model=list[CyclePublic])
async def post_run(connection: str, hub: HubDep, _key: CurrentKey,
                   dry_run: bool = False) -> list[CyclePublic]:
    """Run one cycle now (or print its plan with `dry_run=true`)."""
    outcomes = await run_in_threadpool(sync_connections, hub.engine, hub.settings, connection,
                                       dry_run=dry_run)
    answer = []
    for o in outcomes:
        if o.report is None:
            answer.append(CyclePublic(connection=o.connection, skipped=True))
            continue
        r = o.report
        answer.append(CyclePublic(
            connection=o.connection, skipped=False, run_id=r.run_id, status=r.status,
            counts={k: dict(v) for k, v in r.counts.items()}, api_calls=r.api_calls,
            failures=r.failures,
            plan=[PlannedChangePublic(direction=p.direction, object=p.object,
                                      operation=p.operation, key=p.key, why=p.why)
                  for p in r.plan]))
    return answer
