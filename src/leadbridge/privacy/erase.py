"""Erasure of a person: their hits, browsers and contact record, with the totals they fed.

An erasure leaves only a hash of who was erased (so a later CRM sync can erase the records
it already pushed) and how many hits went.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Connection, bindparam, delete, insert, or_, select, update

from leadbridge.errors import InputError, NotFound
from leadbridge.identify.contacts import normalise_email
from leadbridge.scoring.decay import Decay
from leadbridge.store import field_changes
from leadbridge.store.state import bump_config_version
from leadbridge.store.tables import (
    browser_visitors,
    calls,
    contacts,
    conversions,
    erasures,
    hits,
    organisations,
)


@dataclass(frozen=True, slots=True)
class ErasureReport:
    contacts: int
    browsers: int
    hits: int


def _subtract_from_organisations(conn: Connection, hit_filter: object, decay: Decay) -> None:
    deltas: dict[int, list[float]] = defaultdict(lambda: [0.0, 0])
    # blocked organisations never received these hits in their totals
    rows = conn.execute(select(hits.c.organisation_id, hits.c.score, hits.c.occurred_at)
                        .join(organisations, organisations.c.id == hits.c.organisation_id)
                        .where(hit_filter, hits.c.is_bot.is_(False),  # type: ignore[arg-type]
                               organisations.c.blocked.is_(False)))
    for r in rows:
        d = deltas[r.organisation_id]
        d[0] += decay.weight(r.score, r.occurred_at)
        d[1] += 1
    if deltas:
        conn.execute(
            update(organisations).where(organisations.c.id == bindparam("oid")).values(
                score_weight=organisations.c.score_weight - bindparam("w"),
                hit_count=organisations.c.hit_count - bindparam("n"),
            ),
            [{"oid": k, "w": v[0], "n": int(v[1])} for k, v in deltas.items()],
        )


def erase_contact(conn: Connection, email: str, decay: Decay) -> ErasureReport:
    """Remove a contact by email, every browser linked to it and all their hits."""
    email = normalise_email(email)
    contact_id = conn.execute(select(contacts.c.id).where(contacts.c.email == email)).scalar()
    if contact_id is None:
        raise NotFound(f"no contact with email {email}")
    browser_ids = list(conn.execute(select(browser_visitors.c.id)
                                    .where(browser_visitors.c.contact_id == contact_id)).scalars())
    hit_filter = or_(hits.c.contact_id == contact_id, hits.c.browser_visitor_id.in_(browser_ids))
    _subtract_from_organisations(conn, hit_filter, decay)
    n_hits = conn.execute(delete(hits).where(hit_filter)).rowcount
    _unlink_conversions(conn, browser_ids, contact_id, [])
    conn.execute(delete(browser_visitors).where(browser_visitors.c.id.in_(browser_ids)))
    conn.execute(delete(contacts).where(contacts.c.id == contact_id))
    field_changes.forget(conn, "contact", [str(contact_id)])  # the log held its email too
    _record(conn, "contact", email, n_hits)
    bump_config_version(conn)  # running writers drop the ids they cached
    return ErasureReport(1, len(browser_ids), n_hits)


def erase_browser(conn: Connection, visitor_key: str, decay: Decay) -> ErasureReport:
    """Remove a browser visitor (the tracker's 16-hex visitor id) on every site, with its hits."""
    key = visitor_key.strip().lower()
    if not key:
        raise InputError("give the browser's visitor id (16 hexadecimal characters)")
    browser_ids = list(conn.execute(select(browser_visitors.c.id)
                                    .where(browser_visitors.c.visitor_key == key)).scalars())
    if not browser_ids:
        raise NotFound(f"no browser visitor with id {key}")
    hit_filter = hits.c.browser_visitor_id.in_(browser_ids)
    # a contact keeps its own totals from other browsers; subtract this browser's part
    contact_rows = conn.execute(select(hits.c.contact_id, hits.c.score, hits.c.occurred_at)
                                .where(hit_filter, hits.c.contact_id.is_not(None),
                                       hits.c.is_bot.is_(False))).all()
    per_contact: dict[int, list[float]] = defaultdict(lambda: [0.0, 0])
    for r in contact_rows:
        per_contact[r.contact_id][0] += decay.weight(r.score, r.occurred_at)
        per_contact[r.contact_id][1] += 1
    if per_contact:
        conn.execute(update(contacts).where(contacts.c.id == bindparam("cid")).values(
            score_weight=contacts.c.score_weight - bindparam("w"),
            hit_count=contacts.c.hit_count - bindparam("n")),
            [{"cid": k, "w": v[0], "n": int(v[1])} for k, v in per_contact.items()])
    _subtract_from_organisations(conn, hit_filter, decay)
    n_hits = conn.execute(delete(hits).where(hit_filter)).rowcount
    _unlink_conversions(conn, browser_ids, None, [key])
    conn.execute(delete(browser_visitors).where(browser_visitors.c.id.in_(browser_ids)))
    _record(conn, "browser", key, n_hits)
    bump_config_version(conn)
    return ErasureReport(0, len(browser_ids), n_hits)


def _unlink_conversions(conn: Connection, browser_ids: list[int], contact_id: int | None,
                        visitor_keys: list[str]) -> None:
    """Sales and calls are the business's records and stay (reports keep their amounts and
    the marketing credit); what tied them to the person goes: the visitor id, the browser,
    the contact and the caller's number."""
    who: list[ColumnElement[bool]] = [conversions.c.browser_visitor_id.in_(browser_ids)]
    if contact_id is not None:
        who.append(conversions.c.contact_id == contact_id)
    if visitor_keys:
        who.append(conversions.c.visitor_key.in_(visitor_keys))
    conn.execute(update(conversions).where(or_(*who)).values(
        visitor_key=None, browser_visitor_id=None, contact_id=None))
    if browser_ids:
        conn.execute(update(calls).where(calls.c.browser_visitor_id.in_(browser_ids)).values(
            caller_number=None, browser_visitor_id=None))


def _record(conn: Connection, subject: str, value: str, n_hits: int) -> None:
    conn.execute(insert(erasures).values(
        subject=subject, subject_hash=hashlib.sha256(value.encode()).hexdigest(),
        hits_deleted=n_hits, erased_at=datetime.now(UTC)))
