"""API keys: shown once, stored as SHA-256 hashes (they are long random secrets)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, insert, select, update

from leadbridge.errors import InputError, NotFound
from leadbridge.store.state import bump_config_version
from leadbridge.store.tables import api_keys

KEY_PREFIX = "lb_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    name: str
    prefix: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def create_key(conn: Connection, name: str) -> tuple[ApiKey, str]:
    """Create a key; the clear key is returned here and never again."""
    name = name.strip()
    if not name:
        raise InputError("an API key needs a name")
    clear = KEY_PREFIX + secrets.token_urlsafe(30)
    prefix = clear[:10]
    key_id = conn.execute(
        insert(api_keys)
        .values(name=name, prefix=prefix, key_hash=hash_key(clear), created_at=datetime.now(UTC))
        .returning(api_keys.c.id)
    ).scalar_one()
    return ApiKey(key_id, name, prefix), clear


def verify_key(conn: Connection, clear: str) -> ApiKey | None:
    row = conn.execute(
        select(api_keys.c.id, api_keys.c.name, api_keys.c.prefix).where(
            api_keys.c.key_hash == hash_key(clear), api_keys.c.revoked_at.is_(None)
        )
    ).first()
    return ApiKey(row.id, row.name, row.prefix) if row else None


def list_keys(conn: Connection) -> list[tuple[ApiKey, datetime | None]]:
    rows = conn.execute(select(api_keys).order_by(api_keys.c.id))
    return [(ApiKey(r.id, r.name, r.prefix), r.revoked_at) for r in rows]


def revoke_key(conn: Connection, key_id: int) -> None:
    done = conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    if done.rowcount == 0:
        raise NotFound(f"API key {key_id} does not exist or is already revoked")
    bump_config_version(conn)
