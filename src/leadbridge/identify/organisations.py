"""Organisations behind visits: created from reverse-IP matches, corrected by people.

Resolvers name an organisation with a key ("asn:15169", "range:acme.com"); each key maps to
one organisation. People rename, reclassify, block, merge organisations and set their owner;
a merge points the merged one's keys, hits and contacts at the survivor, so nothing points at
a merged organisation and later visits land on the survivor. Every change by a person bumps
the config version, so running servers drop their cached key -> organisation answers, and a
change of a field the sync can send to a CRM is logged (`leadbridge.store.field_changes`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from leadbridge.errors import InputError, NotFound, StoreError
from leadbridge.identify.classify import ORGANISATION_TYPES, classify_organisation
from leadbridge.identify.enrichment import profiles_for
from leadbridge.identify.resolvers import OrgMatch
from leadbridge.store import field_changes
from leadbridge.store.state import bump_config_version
from leadbridge.store.tables import contacts, hits, organisation_keys, organisations

WEBSITE_VISITOR_TYPES = ("company", "education", "government")
LOGGED_AS = "website_visitor"  # the hub object of the field-change log
_MAX_ASN = 2**31 - 1  # organisations.asn is a signed 32-bit column
_CHUNK = 500
# Values a merged organisation passes to the survivor where the survivor has none.
_FILLED_ON_MERGE = ("domain", "country", "asn", "employees", "industry", "address", "phone",
                    "website", "owner")


@dataclass(frozen=True, slots=True)
class Organisation:
    """One organisation as stored; `merged_into_id` is set once it was merged into another."""

    id: int
    name: str
    domain: str | None
    type: str
    type_set_by: str  # lookup | person
    confidence: float
    source: str
    asn: int | None
    country: str | None
    blocked: bool
    merged_into_id: int | None
    owner: str | None
    crm_account_id: str | None
    employees: int | None
    industry: str | None
    address: str | None
    phone: str | None
    website: str | None
    permalink_token: str
    first_visit_at: datetime | None
    last_visit_at: datetime | None
    hit_count: int
    score_weight: float
    created_at: datetime
    updated_at: datetime

    @property
    def is_website_visitor(self) -> bool:
        """Shown to sales: a company, school or public body, not blocked and not merged."""
        return (
            self.type in WEBSITE_VISITOR_TYPES and not self.blocked and self.merged_into_id is None
        )


def is_website_visitor() -> ColumnElement[bool]:
    """Where-clause for the organisations shown as Website Visitors (ISPs and clouds are not)."""
    return and_(
        organisations.c.type.in_(WEBSITE_VISITOR_TYPES),
        organisations.c.blocked.is_(False),
        organisations.c.merged_into_id.is_(None),
    )


def get_organisation(conn: Connection, organisation_id: int) -> Organisation:
    """The organisation as stored, merged or not; NotFound for an unknown id."""
    row = conn.execute(select(organisations).where(organisations.c.id == organisation_id)).first()
    if row is None:
        raise NotFound(f"organisation {organisation_id} does not exist")
    return Organisation(**row._mapping)


def rename(conn: Connection, organisation_id: int, name: str) -> Organisation:
    """Give an organisation the name people know it by; later lookups keep it."""
    clean = " ".join(name.split())
    if not clean:
        raise InputError(f"organisation {organisation_id}: the new name is empty")
    if len(clean) > 300:
        raise InputError(f"organisation {organisation_id}: a name has at most 300 characters")
    return _change(conn, organisation_id, name=clean)


def reclassify(conn: Connection, organisation_id: int, type: str) -> Organisation:
    """Set the type by hand; lookups never change it back."""
    kind = type.strip().lower()
    if kind not in ORGANISATION_TYPES:
        raise InputError(
            f"organisation {organisation_id}: unknown type {type!r}; "
            f"use one of {', '.join(ORGANISATION_TYPES)}"
        )
    return _change(conn, organisation_id, type=kind, type_set_by="person")


def block(conn: Connection, organisation_id: int) -> Organisation:
    """Keep an organisation out of Website Visitors, whatever its type."""
    return _change(conn, organisation_id, blocked=True)


def unblock(conn: Connection, organisation_id: int) -> Organisation:
    """Undo `block`: the organisation's type decides again whether sales see it."""
    return _change(conn, organisation_id, blocked=False)


def set_owner(conn: Connection, organisation_id: int, owner: str | None) -> Organisation:
    """Name the salesperson who owns the organisation (None: nobody). Changes nothing the
    intake caches, so the config version stays."""
    clean = " ".join(owner.split()) if owner else None
    return _change(conn, organisation_id, bump=False, owner=clean or None)


def merge(conn: Connection, source_id: int, into_id: int) -> Organisation:
    """Fold `source_id` into `into_id` (two names for one company); returns the survivor.

    The survivor takes the source's keys, hits, contacts and totals (visit counts and score
    weights add up; first and last visits widen), and the values it lacks. Organisations
    earlier merged into the source now point at the survivor.
    """
    if source_id == into_id:
        raise InputError(f"organisation {source_id} cannot be merged into itself")
    found = {
        row.id: row
        for row in conn.execute(
            select(organisations)
            .where(organisations.c.id.in_((source_id, into_id)))
            .order_by(organisations.c.id)
            .with_for_update()
        )
    }
    for wanted in (source_id, into_id):
        if wanted not in found:
            raise NotFound(f"organisation {wanted} does not exist")
    source, target = found[source_id], found[into_id]
    if source.merged_into_id is not None:
        raise InputError(
            f"organisation {source_id} is already merged into {source.merged_into_id}"
        )
    if target.merged_into_id is not None:
        raise InputError(
            f"organisation {into_id} was merged into {target.merged_into_id}; "
            f"merge into {target.merged_into_id} instead"
        )
    now = datetime.now(UTC)
    for table in (organisation_keys, hits, contacts):
        conn.execute(
            update(table)
            .where(table.c.organisation_id == source_id)
            .values(organisation_id=into_id)
        )
    conn.execute(
        update(organisations)
        .where(organisations.c.merged_into_id == source_id)
        .values(merged_into_id=into_id, updated_at=now)
    )
    filled = {f: source._mapping[f] for f in _FILLED_ON_MERGE if target._mapping[f] is None}
    conn.execute(
        update(organisations)
        .where(organisations.c.id == into_id)
        .values(
            hit_count=organisations.c.hit_count + source.hit_count,
            score_weight=organisations.c.score_weight + source.score_weight,
            first_visit_at=_earliest(target.first_visit_at, source.first_visit_at),
            last_visit_at=_latest(target.last_visit_at, source.last_visit_at),
            updated_at=now,
            **{f: v for f, v in filled.items() if v is not None},
        )
    )
    conn.execute(
        update(organisations)
        .where(organisations.c.id == source_id)
        .values(merged_into_id=into_id, hit_count=0, score_weight=0.0, updated_at=now)
    )
    field_changes.record(conn, LOGGED_AS, into_id,
                         {f: v for f, v in filled.items() if v is not None}, now)
    bump_config_version(conn)
    return get_organisation(conn, into_id)


def ensure_organisations(
    conn: Connection, matches: Sequence[OrgMatch], now: datetime
) -> dict[str, int]:
    """The organisation id for each match's key, creating the organisations not yet known.

    A key of a merged organisation gives the survivor. Safe when several processes create
    the same organisation at once: one wins and all get its id. New organisations are
    created with one statement per table, whatever their number.
    """
    wanted: dict[str, OrgMatch] = {}
    for match in matches:
        wanted.setdefault(match.key, match)
    found = _known_ids(conn, list(wanted))
    # a fixed order, so two processes creating the same keys cannot deadlock
    new = [wanted[key] for key in sorted(wanted.keys() - found.keys())]
    if new:
        found.update(_create(conn, new, now))
    return found


def create_organisation(conn: Connection, match: OrgMatch, now: datetime) -> int:
    """Create the organisation for a new key, filled from its company profile if known.

    If another process created the key first, this one's organisation is removed and the
    winner's id returned.
    """
    return _create(conn, [match], now)[match.key]


def _create(conn: Connection, new: list[OrgMatch], now: datetime) -> dict[str, int]:
    rows: list[dict[str, Any]] = []
    for match, profile in zip(new, profiles_for(conn, [(m.domain, m.name) for m in new]),
                              strict=True):
        kind = match.type if match.type in ORGANISATION_TYPES else classify_organisation(
            match.name, match.domain
        )[0]
        values: dict[str, Any] = {
            "name": match.name[:300], "domain": match.domain, "type": kind,
            "type_set_by": "lookup", "confidence": match.confidence,
            "source": match.source[:100],
            "asn": match.asn if match.asn is not None and 0 <= match.asn <= _MAX_ASN else None,
            "blocked": False, "permalink_token": secrets.token_urlsafe(24), "hit_count": 0,
            "score_weight": 0.0, "created_at": now, "updated_at": now,
            "employees": None, "industry": None, "address": None, "phone": None,
            "website": None,
        }
        values.update(profile)
        rows.append(values)
    created = conn.execute(
        insert(organisations).returning(organisations.c.id, organisations.c.permalink_token),
        rows,
    )
    by_token = {r.permalink_token: r.id for r in created}
    ids = {m.key: by_token[row["permalink_token"]] for m, row in zip(new, rows, strict=True)}
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    # RETURNING, not rowcount: rowcount is not reliable for INSERT on every driver
    claimed = set(conn.execute(
        dialect_insert(organisation_keys)
        .on_conflict_do_nothing(index_elements=[organisation_keys.c.match_key])
        .returning(organisation_keys.c.match_key),
        [{"match_key": k, "organisation_id": v} for k, v in ids.items()],
    ).scalars())
    lost = [k for k in ids if k not in claimed]
    if lost:
        conn.execute(delete(organisations).where(organisations.c.id.in_([ids[k] for k in lost])))
        winners = _known_ids(conn, lost)
        for key in lost:
            if key not in winners:  # cannot happen while keys are never deleted
                raise StoreError(f"organisation key {key!r} vanished while being created")
            ids[key] = winners[key]
    return ids


def _known_ids(conn: Connection, keys: list[str]) -> dict[str, int]:
    survivor = func.coalesce(organisations.c.merged_into_id, organisations.c.id)
    found: dict[str, int] = {}
    for chunk in _chunks(keys):
        rows = conn.execute(
            select(organisation_keys.c.match_key, survivor)
            .join(organisations, organisations.c.id == organisation_keys.c.organisation_id)
            .where(organisation_keys.c.match_key.in_(chunk))
        )
        found.update({key: org_id for key, org_id in rows})
    return found


def _change(conn: Connection, organisation_id: int, *, bump: bool = True,
            **values: Any) -> Organisation:
    current = get_organisation(conn, organisation_id)
    if current.merged_into_id is not None:
        raise InputError(
            f"organisation {organisation_id} was merged into {current.merged_into_id}; "
            f"change {current.merged_into_id} instead"
        )
    now = datetime.now(UTC)
    conn.execute(
        update(organisations)
        .where(organisations.c.id == organisation_id)
        .values(**values, updated_at=now)
    )
    before = {name: getattr(current, name) for name in values}
    field_changes.record(conn, LOGGED_AS, organisation_id,
                         field_changes.changed(before, values), now)
    if bump:
        bump_config_version(conn)
    return get_organisation(conn, organisation_id)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return min(a, b) if a and b else a or b


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(a, b) if a and b else a or b


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
