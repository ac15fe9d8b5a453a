"""Organisations: every organisation lookup found (ISPs too), and a person's corrections.

Renaming, reclassifying, blocking and merging go through `leadbridge.identify.organisations`,
which keeps keys, hits and totals consistent and tells running servers about the change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from leadbridge.api.deps import ConnDep, CurrentKey, HubDep
from leadbridge.api.listing import ListPage, PagingQuery, view_context
from leadbridge.identify import organisations as orgs
from leadbridge.identify.organisations import Organisation
from leadbridge.views.context import ViewContext
from leadbridge.views.organisations import OrganisationFilter, list_organisations

router = APIRouter(prefix="/api/v1/organisations", tags=["organisations"])

OrganisationType = Literal["company", "isp", "hosting", "education", "government"]


class OrganisationPublic(BaseModel):
    id: int
    name: str
    domain: str | None
    type: str
    type_set_by: str = Field(description="lookup, or person once someone reclassified it")
    confidence: float
    source: str = Field(description="the resolver that found it")
    asn: int | None
    country: str | None
    blocked: bool
    merged_into_id: int | None
    owner: str | None
    crm_account_id: str | None
    hit_count: int
    score: float
    band: str
    first_visit_at: datetime | None
    last_visit_at: datetime | None
    is_website_visitor: bool = Field(description="shown to sales as a Website Visitor")
    permalink: str | None = Field(description="the Website Visitor page, when it is one")

    @classmethod
    def of(cls, org: Organisation, ctx: ViewContext) -> OrganisationPublic:
        score = ctx.score(org.score_weight)
        return cls(
            id=org.id, name=org.name, domain=org.domain, type=org.type,
            type_set_by=org.type_set_by, confidence=org.confidence, source=org.source,
            asn=org.asn, country=org.country, blocked=org.blocked,
            merged_into_id=org.merged_into_id, owner=org.owner,
            crm_account_id=org.crm_account_id, hit_count=org.hit_count, score=score,
            band=ctx.band(score), first_visit_at=org.first_visit_at,
            last_visit_at=org.last_visit_at, is_website_visitor=org.is_website_visitor,
            permalink=ctx.permalink(org.permalink_token) if org.is_website_visitor else None,
        )


class OrganisationQuery(PagingQuery):
    type: OrganisationType | None = None
    blocked: bool | None = None
    q: str | None = Field(default=None, min_length=1, max_length=200,
                          description="part of the name or domain")


class OrganisationUpdate(BaseModel):
    """A person's corrections; give only what changes. `owner: null` clears the owner."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=300)
    type: OrganisationType | None = None
    blocked: bool | None = None
    owner: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _something(self) -> OrganisationUpdate:
        if not self.model_fields_set:
            raise ValueError("give at least one of name, type, blocked, owner")
        for field in ("name", "type", "blocked"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


class MergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    into_id: int = Field(ge=1, description="the organisation that remains")


class OrganisationList(ListPage[OrganisationPublic]):
    """One page of organisations and the total behind it."""


@router.get("", response_model=OrganisationList)
def get_organisations(
    query: Annotated[OrganisationQuery, Query()], hub: HubDep, conn: ConnDep, _key: CurrentKey
) -> OrganisationList:
    """Every organisation, ISPs and hosting networks included; most hits first."""
    ctx = view_context(hub)
    found = list_organisations(conn, OrganisationFilter(type=query.type, blocked=query.blocked,
                                                        q=query.q),
                               page=query.page, per_page=query.per_page)
    return OrganisationList(items=[OrganisationPublic.of(o, ctx) for o in found.items],
                            total=found.total, page=found.page, per_page=found.per_page)


@router.get("/{organisation_id}", response_model=OrganisationPublic)
def get_one_organisation(
    organisation_id: int, hub: HubDep, conn: ConnDep, _key: CurrentKey
) -> OrganisationPublic:
    return OrganisationPublic.of(orgs.get_organisation(conn, organisation_id), view_context(hub))


@router.patch("/{organisation_id}", response_model=OrganisationPublic)
def patch_organisation(
    organisation_id: int, body: OrganisationUpdate, hub: HubDep, conn: ConnDep,
    _key: CurrentKey,
) -> OrganisationPublic:
    """Rename, reclassify (e.g. an ISP that is really a company), block/unblock, set owner."""
    if body.name is not None:
        orgs.rename(conn, organisation_id, body.name)
    if body.type is not None:
        orgs.reclassify(conn, organisation_id, body.type)
    if body.blocked is not None:
        (orgs.block if body.blocked else orgs.unblock)(conn, organisation_id)
    if "owner" in body.model_fields_set:
        orgs.set_owner(conn, organisation_id, body.owner)
    return OrganisationPublic.of(orgs.get_organisation(conn, organisation_id), view_context(hub))


@router.post("/{organisation_id}/merge", response_model=OrganisationPublic)
def post_merge(
    organisation_id: int, body: MergeRequest, hub: HubDep, conn: ConnDep, _key: CurrentKey
) -> OrganisationPublic:
    """Fold this organisation into `into_id` (two names for one company); returns the survivor."""
    survivor = orgs.merge(conn, organisation_id, body.into_id)
    return OrganisationPublic.of(survivor, view_context(hub))
