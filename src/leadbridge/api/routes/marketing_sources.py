"""Marketing sources and their tracking numbers: which campaign a phone number was bought for."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from leadbridge.api.deps import ConnDep, CurrentKey
from leadbridge.conversions.sources import (
    MarketingSource,
    add_number,
    add_source,
    get_source,
    list_sources,
    remove_number,
    update_source,
)

router = APIRouter(prefix="/api/v1/marketing-sources", tags=["calls"])
numbers_router = APIRouter(prefix="/api/v1/tracking-numbers", tags=["calls"])


class SourceUpdate(BaseModel):
    model_config = {"extra": "forbid"}
    channel: str | None = Field(default=None, description="direct, organic_search, "
                                "paid_search, email, social, referral or campaign")
    source: str | None = Field(default=None, max_length=300)
    campaign: str | None = Field(default=None, max_length=300)


class SourceCreate(SourceUpdate):
    name: str = Field(min_length=1, max_length=200)
    numbers: list[str] = Field(default_factory=list, description="tracking numbers, E.164")


class SourcePublic(BaseModel):
    id: int
    name: str
    channel: str | None
    source: str | None
    campaign: str | None
    numbers: list[str]

    @classmethod
    def of(cls, s: MarketingSource) -> SourcePublic:
        return cls(id=s.id, name=s.name, channel=s.channel, source=s.source,
                   campaign=s.campaign, numbers=list(s.numbers))


class NumberCreate(BaseModel):
    model_config = {"extra": "forbid"}
    number: str = Field(min_length=3, max_length=40)


@router.get("", response_model=list[SourcePublic])
def get_sources(conn: ConnDep, _key: CurrentKey) -> list[SourcePublic]:
    return [SourcePublic.of(s) for s in list_sources(conn)]


@router.post("", response_model=SourcePublic, status_code=201)
def post_source(body: SourceCreate, conn: ConnDep, _key: CurrentKey) -> SourcePublic:
    created = add_source(conn, body.name, channel=body.channel, source=body.source,
                         campaign=body.campaign)
    for number in body.numbers:
        add_number(conn, number, created.id)
    return SourcePublic.of(get_source(conn, created.id))


@router.put("/{source_id}", response_model=SourcePublic)
def put_source(source_id: int, body: SourceUpdate, conn: ConnDep,
               _key: CurrentKey) -> SourcePublic:
    return SourcePublic.of(update_source(conn, source_id, channel=body.channel,
                                         source=body.source, campaign=body.campaign))


@router.post("/{source_id}/numbers", response_model=SourcePublic, status_code=201)
def post_number(source_id: int, body: NumberCreate, conn: ConnDep,
                _key: CurrentKey) -> SourcePublic:
    """Give a tracking number to this source (moving it from another source if needed)."""
    add_number(conn, body.number, source_id)
    return SourcePublic.of(get_source(conn, source_id))


@numbers_router.delete("/{number}", status_code=204)
def delete_number(number: str, conn: ConnDep, _key: CurrentKey) -> Response:
    remove_number(conn, number)
    return Response(status_code=204)
