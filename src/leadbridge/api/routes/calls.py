"""Calls: a call-tracking system (or a phone system) reports each tracked call here."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from leadbridge.api.deps import ConnDep, CurrentKey
from leadbridge.conversions.calls import CallIn, parse_started_at, record_call

router = APIRouter(prefix="/api/v1/calls", tags=["calls"])


class CallCreate(BaseModel):
    model_config = {"extra": "forbid"}
    call_ref: str = Field(min_length=1, max_length=100,
                          description="the call-tracking system's reference for this call")
    tracking_number: str = Field(min_length=3, max_length=40,
                                 description="the number dialled, E.164 (+442071838750)")
    caller_number: str | None = Field(default=None, max_length=40,
                                      description="E.164; null when withheld")
    started_at: str = Field(min_length=8, max_length=40,
                            description="ISO 8601; without a zone it is UTC")
    duration_s: int = Field(default=0, ge=0, le=7 * 86_400)
    visitor_id: str | None = Field(default=None, max_length=64,
                                   description="the tracker's visitor id when the caller came "
                                               "from a tracked web session")
    site_id: int | None = Field(default=None, ge=1)


class CallPublic(BaseModel):
    id: int
    call_ref: str
    created: bool = Field(description="false when this call reference was known: updated")
    tracking_number: str
    caller_number: str | None
    marketing_source_id: int | None
    browser_visitor_id: int | None
    contact_id: int | None
    warnings: list[str]


@router.post("", response_model=CallPublic, status_code=201,
             responses={200: {"model": CallPublic, "description": "an existing call updated"}})
def post_call(body: CallCreate, conn: ConnDep, _key: CurrentKey) -> JSONResponse:
    """Record a call (or update the call with this reference); 400 names a malformed field."""
    call = record_call(conn, CallIn(
        call_ref=body.call_ref, tracking_number=body.tracking_number,
        caller_number=body.caller_number, started_at=parse_started_at(body.started_at),
        duration_s=body.duration_s, visitor_id=body.visitor_id, site_id=body.site_id))
    public = CallPublic(id=call.id, call_ref=body.call_ref.strip(), created=call.created,
                        tracking_number=call.tracking_number, caller_number=call.caller_number,
                        marketing_source_id=call.marketing_source_id,
                        browser_visitor_id=call.browser_visitor_id,
                        contact_id=call.contact_id, warnings=call.warnings)
    return JSONResponse(public.model_dump(), status_code=201 if call.created else 200)
