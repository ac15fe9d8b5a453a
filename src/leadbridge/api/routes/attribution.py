"""Attribution: conversions, revenue and margin by channel, source and campaign per model and
period; CRM records whose visitor id or call reference leads nowhere; crediting again."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from leadbridge.api.deps import ConnDep, CurrentKey
from leadbridge.conversions.attribution import MODELS, reattribute
from leadbridge.conversions.reports import (
    DIMENSIONS,
    INTERVALS,
    attribution_report,
    crm_records_without_marketing,
    parse_moment,
    parse_period,
)

router = APIRouter(prefix="/api/v1/attribution", tags=["attribution"])


class ReportRowPublic(BaseModel):
    period: str | None = Field(description="the day, week (its Monday) or month; with interval")
    key: str = Field(description="the channel, source or campaign")
    currency: str | None
    conversions: str = Field(description="credited conversions, two decimals")
    revenue: str
    margin: str


class TotalsPublic(BaseModel):
    period: str | None
    currency: str | None
    conversions: int
    revenue: str
    margin: str


class ReportPublic(BaseModel):
    model: str
    by: str
    start: datetime | None = Field(serialization_alias="from")
    end: datetime | None = Field(serialization_alias="to")
    action: str | None
    interval: str | None
    rows: list[ReportRowPublic]
    totals: list[TotalsPublic]


class RecordPublic(BaseModel):
    connection: str
    object: str
    id: str
    visitor_id: str | None
    call_ref: str | None
    reason: str


class ReattributedPublic(BaseModel):
    conversions: int


@router.get("/report", response_model=ReportPublic, response_model_by_alias=True)
def get_report(
    conn: ConnDep, _key: CurrentKey,
    model: Annotated[str, Query(description=f"one of {', '.join(MODELS)}")] = "last_touch",
    by: Annotated[str, Query(description=f"one of {', '.join(DIMENSIONS)}")] = "channel",
    start: Annotated[str | None, Query(alias="from", description="ISO 8601 date or time; a "
                                       "date is the whole UTC day")] = None,
    end: Annotated[str | None, Query(alias="to", description="ISO 8601 date (included) or "
                                     "time (excluded)")] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    interval: Annotated[str | None, Query(description=f"one of {', '.join(INTERVALS)}: "
                                          "rows and totals per UTC period")] = None,
) -> ReportPublic:
    """Conversions, revenue and margin of the period by channel, source or campaign, per
    currency, under one attribution model; each column adds up to `totals`."""
    since, until = parse_period(start, end)
    report = attribution_report(conn, model=model, by=by, since=since, until=until,
                                action=action, interval=interval)
    return ReportPublic(
        model=report.model, by=report.by, start=report.since, end=report.until,
        action=report.action, interval=report.interval,
        rows=[ReportRowPublic(period=r.period, key=r.key, currency=r.currency,
                              conversions=str(r.conversions), revenue=str(r.revenue),
                              margin=str(r.margin))
              for r in report.rows],
        totals=[TotalsPublic(period=t.period, currency=t.currency, conversions=t.conversions,
                             revenue=str(t.revenue), margin=str(t.margin))
                for t in report.totals])


@router.get("/crm-records-without-marketing", response_model=list[RecordPublic])
def get_records_without_marketing(
    conn: ConnDep, _key: CurrentKey,
    connection: Annotated[str | None, Query(max_length=100)] = None,
) -> list[RecordPublic]:
    """CRM records (read by the last sync cycles) whose visitor id or call reference matches
    no tracked visit and no recorded call."""
    return [RecordPublic(connection=r.connection, object=r.object, id=r.id,
                         visitor_id=r.visitor_key, call_ref=r.call_ref, reason=r.reason)
            for r in crm_records_without_marketing(conn, connection)]


@router.post("/reattribute", response_model=ReattributedPublic)
def post_reattribute(
    conn: ConnDep, _key: CurrentKey,
    since: Annotated[str | None, Query(description="only conversions from this ISO 8601 date "
                                       "or time on; none: all")] = None,
) -> ReattributedPublic:
    """Credit stored conversions again (after late matches or hits); CRM records showing
    their attribution are written again on the next sync cycle."""
    return ReattributedPublic(conversions=reattribute(conn, since=parse_moment(since, "since")))
