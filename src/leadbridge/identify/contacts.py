"""Contacts: people, once known. A browser visitor becomes a contact when identified by
`uid` (email or CRM id), by a signed contact token on email links (`lb_ct=`), or by a form.

Once a browser is identified, its earlier hits belong to the contact and count in its score.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from leadbridge.errors import InputError
from leadbridge.scoring.decay import Decay
from leadbridge.store import field_changes
from leadbridge.store.tables import browser_visitors, contacts, hits

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a browser turned out to be: an email, a CRM id, or both."""

    email: str | None = None
    external_id: str | None = None
    name: str | None = None


def normalise_email(email: str) -> str:
    value = email.strip().lower()
    if not _EMAIL.match(value) or len(value) > 320:
        raise InputError(f"{email[:80]!r} is not an email address")
    return value


def identity_from_uid(uid: str) -> Identity:
    """Matomo's `uid`: an email address, or else the contact's id in the CRM."""
    uid = uid.strip()
    if "@" in uid:
        return Identity(email=normalise_email(uid))
    if not uid:
        raise InputError("uid is empty")
    return Identity(external_id=uid[:200])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, email: str) -> bytes:
    return hmac.new(secret.encode(), b"lb_ct:" + email.encode(), hashlib.sha256).digest()[:16]


def make_contact_token(secret: str, email: str) -> str:
    """A token for links in marketing emails (`?lb_ct=...`) that identifies the recipient."""
    email = normalise_email(email)
    return f"{_b64(email.encode())}.{_b64(_signature(secret, email))}"


def read_contact_token(secret: str, token: str) -> str | None:
    """The email a genuine token names; None for a forged or damaged token."""
    try:
        body, sig = token.split(".", 1)
        email = _unb64(body).decode()
        given = _unb64(sig)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not hmac.compare_digest(given, _signature(secret, email)):
        return None
    return email


def get_or_create_contact(conn: Connection, identity: Identity, now: datetime) -> int:
    """The contact for `identity` (by email first, then CRM id), created when new. A name
    given fills a contact's missing one (a logged change the sync sends on)."""
    for column, value in ((contacts.c.email, identity.email),
                          (contacts.c.external_id, identity.external_id)):
        if value:
            found = conn.execute(select(contacts.c.id).where(column == value)).scalar()
            if found is not None:
                if identity.name and conn.execute(
                        update(contacts).where(contacts.c.id == found, contacts.c.name.is_(None))
                        .values(name=identity.name, updated_at=now)).rowcount:
                    field_changes.record(conn, "contact", found, {"name": identity.name}, now)
                return int(found)
    return int(conn.execute(
        insert(contacts).values(
            email=identity.email, external_id=identity.external_id, name=identity.name,
            created_at=now, updated_at=now, hit_count=0, score_weight=0.0,
        ).returning(contacts.c.id)
    ).scalar_one())


def link_browser(conn: Connection, browser_visitor_id: int, contact_id: int, decay: Decay) -> int:
    """Make a browser visitor the contact's; its unclaimed earlier hits join the contact.

    Returns how many earlier hits moved to the contact.
    """
    conn.execute(update(browser_visitors).where(browser_visitors.c.id == browser_visitor_id)
                 .values(contact_id=contact_id))
    earlier = conn.execute(
        select(hits.c.score, hits.c.occurred_at, hits.c.is_bot).where(
            hits.c.browser_visitor_id == browser_visitor_id, hits.c.contact_id.is_(None)
        )
    ).all()
    if not earlier:
        return 0
    conn.execute(update(hits).where(hits.c.browser_visitor_id == browser_visitor_id,
                                    hits.c.contact_id.is_(None)).values(contact_id=contact_id))
    human = [h for h in earlier if not h.is_bot]
    if human:
        weight = sum(decay.weight(h.score, h.occurred_at) for h in human)
        first = min(h.occurred_at for h in human)
        last = max(h.occurred_at for h in human)
        row = conn.execute(select(contacts.c.first_seen_at, contacts.c.last_seen_at)
                           .where(contacts.c.id == contact_id)).one()
        conn.execute(update(contacts).where(contacts.c.id == contact_id).values(
            score_weight=contacts.c.score_weight + weight,
            hit_count=contacts.c.hit_count + len(human),
            first_seen_at=min(first, row.first_seen_at) if row.first_seen_at else first,
            last_seen_at=max(last, row.last_seen_at) if row.last_seen_at else last,
        ))
    return len(earlier)
