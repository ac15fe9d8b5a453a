"""Tracked phone calls: who called which tracking number, when, and from which web session.

A call is stored even when its tracking number is not registered or its visitor id is not
known (the call happened; the warnings say what could not be linked). Sending the same call
reference again updates that call: call-tracking systems often send a call when it starts and
again when it ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, insert, select, update

from leadbridge.conversions.fields import RowRejected, parse_occurred_at
from leadbridge.conversions.matching import find_visitors, pick_visitor
from leadbridge.conversions.sources import parse_phone
from leadbridge.errors import InputError
from leadbridge.store.tables import calls, tracking_numbers

__all__ = ["CallIn", "RecordedCall", "parse_started_at", "record_call"]

_REF = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,99}")
_VISITOR = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class CallIn:
    """A call as sent; `record_call` validates it."""

    call_ref: str
    tracking_number: str
    started_at: datetime
    caller_number: str | None = None
    duration_s: int = 0
    visitor_id: str | None = None
    site_id: int | None = None


@dataclass(slots=True)
class RecordedCall:
    id: int
    created: bool
    tracking_number: str
    caller_number: str | None
    marketing_source_id: int | None
    browser_visitor_id: int | None
    contact_id: int | None
    warnings: list[str] = field(default_factory=list)


def parse_started_at(raw: str) -> datetime:
    """ISO 8601 start time; no zone means UTC (the rules of conversion dates)."""
    try:
        return parse_occurred_at(raw)
    except RowRejected as exc:
        raise InputError(exc.reason.replace("occurred_at", "started_at")) from None


def record_call(conn: Connection, call: CallIn) -> RecordedCall:
    """Store (or update) one call; InputError names the field that is wrong."""
    ref = call.call_ref.strip()
    if not _REF.fullmatch(ref):
        raise InputError(f"invalid call reference {ref[:40]!r}: 1-100 printable characters")
    number = parse_phone(call.tracking_number, "tracking_number")
    caller = parse_phone(call.caller_number, "caller_number") if call.caller_number else None
    if call.duration_s < 0:
        raise InputError(f"duration_s {call.duration_s} is negative")
    if call.started_at.tzinfo is None:
        raise InputError("started_at needs a time zone")
    warnings: list[str] = []
    source_id = conn.execute(select(tracking_numbers.c.marketing_source_id)
                             .where(tracking_numbers.c.number == number)).scalar()
    if source_id is None:
        warnings.append(f"tracking number {number} is not registered to a marketing source")
    visitor_id = contact_id = None
    if call.visitor_id:
        if not _VISITOR.fullmatch(call.visitor_id):
            raise InputError(f"visitor_id {call.visitor_id[:40]!r} is not a tracker visitor id")
        key = call.visitor_id.lower()
        match = pick_visitor(find_visitors(conn, [key]).get(key), call.site_id)
        if match is None:
            where = f" on site {call.site_id}" if call.site_id is not None else ""
            warnings.append(f"unknown visitor id {key}{where}: the call is stored unlinked")
        else:
            visitor_id, contact_id = match.id, match.contact_id
    values = dict(
        tracking_number=number, caller_number=caller, started_at=call.started_at.astimezone(UTC),
        duration_s=call.duration_s, browser_visitor_id=visitor_id, site_id=call.site_id,
        marketing_source_id=source_id,
    )
    existing = conn.execute(select(calls.c.id).where(calls.c.call_ref == ref)).scalar()
    if existing is not None:
        conn.execute(update(calls).where(calls.c.id == existing).values(**values))
        call_id, created = int(existing), False
    else:
        call_id = conn.execute(insert(calls).values(call_ref=ref, created_at=datetime.now(UTC),
                                                    **values).returning(calls.c.id)).scalar_one()
        created = True
    return RecordedCall(call_id, created, number, caller, source_id, visitor_id, contact_id,
                        warnings)
