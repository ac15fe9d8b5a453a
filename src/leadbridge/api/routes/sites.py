"""Sites: list and add tracked websites."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from leadbridge.api.deps import ConnDep, CurrentKey
from leadbridge.sites import add_site, list_sites

router = APIRouter(prefix="/api/v1/sites", tags=["sites"])


class SiteCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    hosts: list[str] = Field(min_length=1)


class SitePublic(BaseModel):
    id: int
    name: str
    hosts: list[str]


@router.get("", response_model=list[SitePublic])
def get_sites(conn: ConnDep, _key: CurrentKey) -> list[SitePublic]:
    return [SitePublic(id=s.id, name=s.name, hosts=list(s.hosts)) for s in list_sites(conn)]


@router.post("", response_model=SitePublic, status_code=201)
def post_site(body: SiteCreate, conn: ConnDep, _key: CurrentKey) -> SitePublic:
    site = add_site(conn, body.name, body.hosts)
    return SitePublic(id=site.id, name=site.name, hosts=list(site.hosts))
