"""One conversion's fields, validated: the same rules for a CSV row and an API object.

A row that breaks a rule raises `RowRejected` with a reason a person can act on; the reason's
first words are a stable category (`bad date`, `bad currency`, `negative amount`, ...) so
reports can be grouped by it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from operator import itemgetter
from typing import Any, NamedTuple

import pycountry

__all__ = [
    "COLUMNS",
    "ConversionRow",
    "RowParser",
    "RowRejected",
    "build",
    "parse_occurred_at",
]

# canonical column -> the names a header may use for it (lower case; the header is lowered)
COLUMNS: dict[str, tuple[str, ...]] = {
    "action": ("action", "act"),
    "title": ("title", "t"),
    "occurred_at": ("occurred_at", "dt"),
    "transaction_ref": ("transaction_ref", "txr"),
    "amount": ("amount", "txv"),
    "currency": ("currency", "txc"),
    "margin": ("margin",),
    "visitor_id": ("visitor_id", "vid"),
    "call_ref": ("call_ref", "callref"),
    "site_id": ("site_id", "idsite"),
}
_ALIAS = {alias: name for name, aliases in COLUMNS.items() for alias in aliases}

# ISO 4217 as maintained by pycountry, less the "no currency" and testing codes
CURRENCIES = frozenset(c.alpha_3 for c in pycountry.currencies) - {"XXX", "XTS"}

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_VISITOR = re.compile(r"[A-Za-z0-9_-]{1,64}").fullmatch
_MAX_AMOUNT = Decimal(10) ** 14  # Numeric(18, 4)
_END_OF_DAY = time(23, 59, 59, tzinfo=UTC)
_BLANKS = [""] * 1000
_LIMITS = {"action": 100, "title": 300, "transaction_ref": 200, "call_ref": 100}


class RowRejected(Exception):
    """This row cannot be stored; `reason` says why, in words for the person who sent it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConversionRow(NamedTuple):
    """A valid conversion, not yet matched to a visitor or call."""

    action: str
    title: str | None
    occurred_at: datetime
    transaction_ref: str | None
    amount: Decimal | None
    currency: str | None
    margin: Decimal | None
    visitor_key: str | None
    call_ref: str | None
    site_id: int | None

    def fingerprint(self) -> str:
        """Every field, digested: the identity of a row that has no transaction reference."""
        parts = (self.action, self.title or "", self.occurred_at.isoformat(),
                 str(self.amount or ""), self.currency or "", str(self.margin or ""),
                 self.visitor_key or "", self.call_ref or "", str(self.site_id or ""))
        return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


def parse_occurred_at(raw: str) -> datetime:
    """ISO 8601 to an aware UTC datetime: no zone means UTC; a date alone means 23:59:59."""
    if not raw:
        raise RowRejected("bad date: occurred_at is empty")
    try:
        if len(raw) <= 10 and "T" not in raw and ":" not in raw:
            return datetime.combine(date.fromisoformat(raw), _END_OF_DAY)
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise RowRejected(
            f"bad date: occurred_at {raw[:40]!r} is not ISO 8601 "
            "(e.g. 2026-03-01, 2026-03-01T14:30:00, 2026-03-01T14:30:00+02:00)"
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _amount(raw: str, name: str) -> Decimal:
    if not _NUMBER.fullmatch(raw):
        raise RowRejected(f"bad {name}: {raw[:40]!r} is not a number (digits and a dot: 1234.50)")
    value = Decimal(raw)
    if abs(value) >= _MAX_AMOUNT:
        raise RowRejected(f"bad {name}: {raw[:40]} is too large")
    return value


class RowParser:
    """Validates rows of one header (a CSV file's) or mappings (API objects).

    Built once per file: the header's positions are resolved here, so a row costs only its
    own checks.
    """

    def __init__(self, header: Sequence[str]) -> None:
        if len(header) >= len(_BLANKS):
            raise ValueError(f"the header has {len(header)} columns; a conversions file has "
                             f"at most {len(_BLANKS) - 1}")
        positions: dict[str, int] = {}
        for i, raw in enumerate(header):
            name = _ALIAS.get(raw.strip().lower())
            if name is None:
                continue
            if name in positions:
                raise ValueError(f"columns {header[positions[name]]!r} and {raw!r} both give "
                                 f"{name}; keep one")
            positions[name] = i
        if "visitor_id" not in positions and "call_ref" not in positions:
            raise ValueError("the header needs a visitor_id (vid) or call_ref (callRef) column; "
                             f"found {', '.join(h for h in header if h) or 'no columns'}")
        if "occurred_at" not in positions:
            raise ValueError("the header needs an occurred_at (dt) column")
        self.positions = positions
        self._pick = itemgetter(*[positions.get(name, len(header)) for name in COLUMNS])
        self.unknown = [h for h in header if h.strip().lower() not in _ALIAS]
        self._width = len(header)

    @classmethod
    def for_objects(cls) -> RowParser:
        return cls(list(COLUMNS))

    def parse_cells(self, cells: Sequence[str]) -> ConversionRow:
        """A CSV row (cells in header order) as a conversion; RowRejected says why not."""
        n = len(cells)
        if n > self._width:
            raise RowRejected(f"malformed row: {n} cells under a header of "
                              f"{self._width} columns (an unquoted delimiter?)")
        # blanks for a short row, and one more that the absent columns point at
        return build(*map(str.strip, self._pick([*cells, *_BLANKS[: self._width + 1 - n]])))

    def parse_object(self, obj: Mapping[str, Any]) -> ConversionRow:
        """An API object (canonical or alias keys) as a conversion."""
        values: dict[str, str] = {}
        for key, value in obj.items():
            name = _ALIAS.get(key.lower()) if isinstance(key, str) else None
            if name is None:
                raise RowRejected(f"unknown field {str(key)[:40]!r}; fields are "
                                  f"{', '.join(COLUMNS)}")
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise RowRejected(f"bad {name}: {value!r:.40} must be text or a number")
            values[name] = str(value).strip()
        return parse_values(values)


def parse_values(v: Mapping[str, str]) -> ConversionRow:
    """Validate stripped text values by canonical column name."""
    return build(*[v.get(name, "") for name in COLUMNS])


def _check_text(**values: str) -> None:
    for name, text in values.items():
        limit = _LIMITS[name]
        if len(text) > limit:
            raise RowRejected(f"{name} too long: {len(text)} characters, at most {limit}")
        if "\x00" in text:
            raise RowRejected(f"malformed row: {name} contains a NUL character")


def build(action: str, title: str, occurred_at: str, transaction_ref: str, amount: str,
          currency: str, margin: str, visitor_id: str, call_ref: str,
          site_id: str) -> ConversionRow:
    """Validate one conversion's stripped text values (in `COLUMNS` order)."""
    if visitor_id:
        if not _VISITOR(visitor_id):
            raise RowRejected(f"bad visitor id: {visitor_id[:40]!r} is not a tracker visitor "
                              "id (1-64 letters, digits, - or _; Matomo's are 16 hex "
                              "characters)")
        visitor_id = visitor_id.lower()
    elif not call_ref:
        raise RowRejected("missing both ids: a visitor_id or a call_ref is needed")
    if (len(action) > 100 or len(title) > 300 or len(transaction_ref) > 200
            or len(call_ref) > 100 or "\x00" in action + title + transaction_ref + call_ref):
        _check_text(action=action, title=title, transaction_ref=transaction_ref,
                    call_ref=call_ref)
    moment = parse_occurred_at(occurred_at)
    value = _amount(amount, "amount") if amount else None
    if value is not None and value < 0:
        raise RowRejected(f"negative amount: {amount}; a refund is its own action with a "
                          "positive amount")
    margin_value = _amount(margin, "margin") if margin else None
    if currency:
        currency = currency.upper()
        if currency not in CURRENCIES:
            raise RowRejected(f"bad currency: {currency[:10]!r} is not an ISO 4217 code "
                              "(e.g. EUR)")
    elif value is not None or margin_value is not None:
        raise RowRejected("bad currency: a currency (ISO 4217, e.g. EUR) is needed with an "
                          "amount or margin")
    site = None
    if site_id:
        if not site_id.isdigit() or len(site_id) > 9:
            raise RowRejected(f"bad site_id: {site_id[:20]!r} is not a site number")
        site = int(site_id)
    return ConversionRow(action or "sale", title or None, moment, transaction_ref or None,
                         value, currency or None, margin_value, visitor_id or None,
                         call_ref or None, site)
