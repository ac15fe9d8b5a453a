"""Tracked websites: numeric id (Matomo's idsite) and the host names allowed to send hits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, insert, select

from leadbridge.errors import InputError, NotFound
from leadbridge.store.state import bump_config_version
from leadbridge.store.tables import sites

_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"^(\*\.)?({_LABEL}\.)*{_LABEL}(:\d{{1,5}})?$")


@dataclass(frozen=True, slots=True)
class Site:
    id: int
    name: str
    hosts: tuple[str, ...]

    def allows(self, host: str) -> bool:
        """True for a listed host, or a subdomain of a `*.example.com` entry."""
        host = host.lower()
        for allowed in self.hosts:
            if allowed.startswith("*."):
                if host == allowed[2:] or host.endswith(allowed[1:]):
                    return True
            elif host == allowed:
                return True
        return False


def normalise_host(host: str) -> str:
    h = host.strip().lower().rstrip(".")
    if "://" in h:
        raise InputError(f"host {host!r}: give a host name such as www.example.com, not a URL")
    if not _HOST.match(h):
        raise InputError(f"host {host!r} is not a valid host name")
    return h


def add_site(conn: Connection, name: str, hosts: list[str]) -> Site:
    name = name.strip()
    if not name:
        raise InputError("a site needs a name")
    if not hosts:
        raise InputError(f"site {name!r} needs at least one --host")
    clean = tuple(dict.fromkeys(normalise_host(h) for h in hosts))
    site_id = conn.execute(
        insert(sites)
        .values(name=name, hosts=list(clean), created_at=datetime.now(UTC))
        .returning(sites.c.id)
    ).scalar_one()
    bump_config_version(conn)
    return Site(site_id, name, clean)


def list_sites(conn: Connection) -> list[Site]:
    rows = conn.execute(select(sites.c.id, sites.c.name, sites.c.hosts).order_by(sites.c.id))
    return [Site(r.id, r.name, tuple(r.hosts)) for r in rows]


def remove_site(conn: Connection, site_id: int) -> None:
    if conn.execute(delete(sites).where(sites.c.id == site_id)).rowcount == 0:
        raise NotFound(f"site {site_id} does not exist")
    bump_config_version(conn)
