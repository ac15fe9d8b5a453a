"""What a matched conversion looks like to the code after intake (attribution, reports)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import NamedTuple
from uuid import UUID

__all__ = ["MatchedConversion"]


class MatchedConversion(NamedTuple):
    """A conversion as stored, with what it matched (immutable; a NamedTuple because imports
    build one per row, by the million).

    Handed in batches to `leadbridge.conversions.attribution.attribute_batch(conn, batch)` in
    the transaction that inserts it. `browser_visitor_id` is None when the conversion matched
    a call that came from no web session; `amount` and `margin` are None when the row had none
    (`currency` is then None too); `occurred_at` is UTC-aware.
    """

    id: UUID
    browser_visitor_id: int | None
    occurred_at: datetime
    amount: Decimal | None
    margin: Decimal | None
    currency: str | None
    action: str = "sale"
    contact_id: int | None = None
    call_id: int | None = None
    marketing_source_id: int | None = None  # the call's tracking-number source, if any
