"""Time-ordered keys for high-volume tables: UUIDv7 keeps index inserts at the right edge."""

from __future__ import annotations

import uuid
from datetime import datetime

import uuid_utils
from uuid_utils.compat import uuid7

__all__ = ["floor_id", "new_hex_id", "new_id"]


def new_id() -> uuid.UUID:
    return uuid7()


def new_hex_id() -> str:
    """A new key as its 32 hex digits, for the intake: SQLite stores UUIDs in this form and
    PostgreSQL reads it as a uuid; making and sending it costs a tenth of a `uuid.UUID`."""
    return uuid_utils.uuid7().hex


def floor_id(moment: datetime) -> uuid.UUID:
    """The smallest UUIDv7 of `moment`: every key created before it sorts below."""
    ms = int(moment.timestamp() * 1000)
    return uuid.UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62))
