"""Contacts: list and read people; sign email-link tokens; identify a browser from a form."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from leadbridge.api.deps import ConnDep, CurrentKey, HubDep
from leadbridge.api.listing import ListPage, PagingQuery, view_context
from leadbridge.api.routes.hits import HitPublic
from leadbridge.errors import InputError, StoreError, UnknownSite
from leadbridge.hub import Hub
from leadbridge.identify.contacts import Identity, make_contact_token, normalise_email
from leadbridge.store.tables import contacts
from leadbridge.tracking.batch import PreparedHit
from leadbridge.views.contacts import Contact, ContactFilter, get_contact, list_contacts
from leadbridge.views.hits import HitFilter, recent_hits

router = APIRouter(prefix="/api/v1", tags=["contacts"])
MAX_TOKEN_EMAILS = 1000


class OrganisationRef(BaseModel):
    id: int
    name: str | None


class ContactPublic(BaseModel):
    id: int
    email: str | None
    external_id: str | None = Field(description="the contact's id in the CRM")
    name: str | None
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    score: float = Field(description="current score, decayed to now")
    band: str
    hit_count: int
    organisation: OrganisationRef | None

    @classmethod
    def of(cls, c: Contact) -> ContactPublic:
        org = (OrganisationRef(id=c.organisation_id, name=c.organisation_name)
               if c.organisation_id is not None else None)
        return cls(id=c.id, email=c.email, external_id=c.external_id, name=c.name,
                   first_seen_at=c.first_seen_at, last_seen_at=c.last_seen_at, score=c.score,
                   band=c.band, hit_count=c.hit_count, organisation=org)


class ContactDetail(ContactPublic):
    hits: list[HitPublic] = Field(description="the most recent hits, newest first")


class ContactQuery(PagingQuery):
    q: str | None = Field(default=None, min_length=1, max_length=320,
                          description="part of the email, name or CRM id")
    min_score: float | None = Field(default=None, ge=0)


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    emails: list[str] = Field(min_length=1, max_length=MAX_TOKEN_EMAILS)


class ContactToken(BaseModel):
    email: str
    token: str = Field(description="add as ?lb_ct=<token> to links in emails to this person")


class TokenError(BaseModel):
    email: str
    detail: str


class TokenList(BaseModel):
    tokens: list[ContactToken]
    errors: list[TokenError] = Field(description="addresses that got no token, and why")


class IdentifyRequest(BaseModel):
    """A form submission: this browser (tracker visitor id) belongs to this person."""

    model_config = ConfigDict(extra="forbid")
    site_id: int = Field(ge=1)
    visitor_id: str = Field(pattern=r"^[0-9a-fA-F]{16}$",
                            description="the tracker's visitor id (16 hex characters)")
    email: str = Field(min_length=3, max_length=320)
    name: str | None = Field(default=None, min_length=1, max_length=300)


class ContactList(ListPage[ContactPublic]):
    """One page of contacts and the total behind it."""


@router.get("/contacts", response_model=ContactList)
def get_contacts(
    query: Annotated[ContactQuery, Query()], hub: HubDep, conn: ConnDep, _key: CurrentKey
) -> ContactList:
    """Contacts passing the filters, hottest first."""
    found = list_contacts(conn, view_context(hub), ContactFilter(q=query.q,
                                                                 min_score=query.min_score),
                          page=query.page, per_page=query.per_page)
    return ContactList(items=[ContactPublic.of(c) for c in found.items], total=found.total,
                       page=found.page, per_page=found.per_page)


@router.get("/contacts/{contact_id}", response_model=ContactDetail)
def get_one_contact(
    contact_id: int, hub: HubDep, conn: ConnDep, _key: CurrentKey,
    hits_limit: Annotated[int, Query(ge=0, le=500, description="how many recent hits")] = 50,
) -> ContactDetail:
    """One contact with their most recent hits."""
    contact = get_contact(conn, view_context(hub), contact_id)
    hits = recent_hits(conn, HitFilter(contact_id=contact.id), hits_limit)
    return ContactDetail(**ContactPublic.of(contact).model_dump(),
                         hits=[HitPublic.of(h) for h in hits])


@router.post("/contacts/tokens", response_model=TokenList)
def post_contact_tokens(body: TokenRequest, hub: HubDep, _key: CurrentKey) -> TokenList:
    """Signed `lb_ct` tokens for email links; an invalid address is reported, not fatal."""
    tokens: list[ContactToken] = []
    errors: list[TokenError] = []
    for email in body.emails:
        try:
            tokens.append(ContactToken(email=normalise_email(email),
                                       token=make_contact_token(hub.secret, email)))
        except InputError as exc:
            errors.append(TokenError(email=email[:320], detail=str(exc)))
    return TokenList(tokens=tokens, errors=errors)


def _found_contact(hub: Hub, email: str) -> ContactPublic:
    with hub.engine.connect() as conn:
        contact_id = conn.execute(select(contacts.c.id).where(contacts.c.email == email)).scalar()
        if contact_id is None:
            raise StoreError(f"contact {email} was not stored; send the identification again")
        return ContactPublic.of(get_contact(conn, view_context(hub), contact_id))


@router.post("/identify", response_model=ContactPublic)
async def post_identify(body: IdentifyRequest, hub: HubDep, _key: CurrentKey) -> ContactPublic:
    """Identify a browser from a form: its earlier and later hits count for the contact.

    The identification goes through the intake's writer, like a `uid` on a hit, as a
    hit-less "ping": the writer creates the browser visitor if it is new, links it to the
    contact (claiming its earlier hits) and keeps its own browser -> contact cache right, so
    the very next hit of that browser is the contact's too.
    """
    if body.site_id not in hub.sites:
        raise UnknownSite(f"site {body.site_id} is not a known site")
    email = normalise_email(body.email)
    identification = PreparedHit(
        site_id=body.site_id, visitor_key=body.visitor_id.lower(),
        row={"occurred_at": hub.now()}, identity=Identity(email=email, name=body.name),
        is_ping=True,
    )
    await hub.commit.submit(identification)
    return await run_in_threadpool(_found_contact, hub, email)
