"""Marketing sources and the tracking numbers printed in them.

A call to a tracking number is credited to that number's source (its channel, source and
campaign), whether or not the caller came through the website.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import phonenumbers
from sqlalchemy import Connection, delete, insert, select, update

from leadbridge.errors import InputError, NotFound
from leadbridge.store.tables import marketing_sources, tracking_numbers
from leadbridge.tracking.channels import CHANNELS

__all__ = [
    "MarketingSource",
    "add_number",
    "add_source",
    "get_source",
    "list_sources",
    "parse_phone",
    "remove_number",
]


@dataclass(frozen=True, slots=True)
class MarketingSource:
    id: int
    name: str
    channel: str | None
    source: str | None
    campaign: str | None
    numbers: tuple[str, ...]


def parse_phone(raw: str, what: str) -> str:
    """A phone number in E.164 (+4420...); InputError names `what` when it is not one.

    Only international numbers are accepted: the hub has no home country to guess from.
    """
    text = raw.strip()
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise InputError(f"{what} {text[:40]!r} is not a phone number in international form "
                         "(E.164, e.g. +442071838750)") from None
    if not phonenumbers.is_possible_number(number):
        raise InputError(f"{what} {text[:40]!r} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _clean(value: str | None, limit: int, what: str) -> str | None:
    value = (value or "").strip() or None
    if value is not None and len(value) > limit:
        raise InputError(f"{what} is {len(value)} characters long; at most {limit}")
    return value


def add_source(conn: Connection, name: str, *, channel: str | None = None,
               source: str | None = None, campaign: str | None = None) -> MarketingSource:
    """Create a marketing source; InputError if the name is taken or the channel unknown."""
    clean_name = _clean(name, 200, "a marketing source's name")
    if clean_name is None:
        raise InputError("a marketing source needs a name")
    if channel is not None and channel not in CHANNELS:
        raise InputError(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    if conn.execute(select(marketing_sources.c.id)
                    .where(marketing_sources.c.name == clean_name)).first() is not None:
        raise InputError(f"marketing source {clean_name!r} already exists")
    source_id = conn.execute(
        insert(marketing_sources).values(
            name=clean_name, channel=channel, source=_clean(source, 300, "source"),
            campaign=_clean(campaign, 300, "campaign"), created_at=datetime.now(UTC))
        .returning(marketing_sources.c.id)
    ).scalar_one()
    return get_source(conn, source_id)


def update_source(conn: Connection, source_id: int, *, channel: str | None,
                  source: str | None, campaign: str | None) -> MarketingSource:
    if channel is not None and channel not in CHANNELS:
        raise InputError(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    done = conn.execute(update(marketing_sources).where(marketing_sources.c.id == source_id)
                        .values(channel=channel, source=_clean(source, 300, "source"),
                                campaign=_clean(campaign, 300, "campaign")))
    if done.rowcount == 0:
        raise NotFound(f"marketing source {source_id} does not exist")
    return get_source(conn, source_id)


def list_sources(conn: Connection) -> list[MarketingSource]:
    numbers: dict[int, list[str]] = {}
    for number, source_id in conn.execute(
            select(tracking_numbers.c.number, tracking_numbers.c.marketing_source_id)
            .order_by(tracking_numbers.c.number)):
        numbers.setdefault(source_id, []).append(number)
    rows = conn.execute(select(marketing_sources).order_by(marketing_sources.c.name))
    return [MarketingSource(r.id, r.name, r.channel, r.source, r.campaign,
                            tuple(numbers.get(r.id, ()))) for r in rows]


def get_source(conn: Connection, source_id: int) -> MarketingSource:
    for found in list_sources(conn):
        if found.id == source_id:
            return found
    raise NotFound(f"marketing source {source_id} does not exist")


def source_id_by_name(conn: Connection, name: str) -> int:
    found = conn.execute(select(marketing_sources.c.id)
                         .where(marketing_sources.c.name == name.strip())).scalar()
    if found is None:
        raise NotFound(f"marketing source {name!r} does not exist "
                       "(leadbridge conversions sources add NAME)")
    return int(found)


def add_number(conn: Connection, number: str, source_id: int) -> str:
    """Give a tracking number to a source; a number already given elsewhere moves to it."""
    e164 = parse_phone(number, "tracking number")
    if conn.execute(select(marketing_sources.c.id)
                    .where(marketing_sources.c.id == source_id)).first() is None:
        raise NotFound(f"marketing source {source_id} does not exist")
    moved = conn.execute(update(tracking_numbers).where(tracking_numbers.c.number == e164)
                         .values(marketing_source_id=source_id))
    if moved.rowcount == 0:
        conn.execute(insert(tracking_numbers).values(
            number=e164, marketing_source_id=source_id, created_at=datetime.now(UTC)))
    return e164


def remove_number(conn: Connection, number: str) -> str:
    e164 = parse_phone(number, "tracking number")
    if conn.execute(delete(tracking_numbers)
                    .where(tracking_numbers.c.number == e164)).rowcount == 0:
        raise NotFound(f"tracking number {e164} is not registered")
    return e164
