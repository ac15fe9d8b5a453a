"""Connections: the configured CRMs, with their settings in clear and credentials encrypted.

A connection has a slug name, a kind (which connector speaks to it), settings that are not
secret (the server URL, options) and credentials, stored only as a keyring ciphertext bound
to the connection's name. Listing never reads credentials; only `credentials_for` decrypts
them, for the sync engine and connection tests. Every secret value received or decrypted
here is registered with the log redaction, so it cannot reach a log line in this process.

`build_connector` turns a connection into its connector. A connector package is imported
only when a connection of its kind is used; a kind without a factory here is served by its
package's `make_connector(settings, credentials) -> Connector`, once the package has one.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from leadbridge.connectors.base import Connector, ConnectorError
from leadbridge.errors import InputError, LeadBridgeError, NotFound
from leadbridge.keyring import Keyring
from leadbridge.redact import redact, remember_secrets
from leadbridge.store.tables import connections

log = logging.getLogger(__name__)

ConnectorFactory = Callable[[Mapping[str, Any], Mapping[str, Any]], Connector]

NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")
MAX_SETTINGS_BYTES = 16 * 1024
# credential fields that name who signs in rather than prove it; not hidden in logs
IDENTITY_FIELDS = frozenset({"email", "username", "user", "client_id", "tenant_id"})
_SECRET_SETTING = re.compile(
    r"(?i)(password|passwd|secret|token|api[_-]?key|apikey|private[_-]?key|credential)"
)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


@dataclass(frozen=True, slots=True)
class ConnectionKind:
    """What a kind of connection needs before it is stored (its connector checks the rest)."""

    name: str
    label: str
    settings_required: tuple[str, ...] = ()
    credentials_required: tuple[str, ...] = ()


KINDS: dict[str, ConnectionKind] = {
    kind.name: kind
    for kind in (
        ConnectionKind("bottlecrm", "BottleCRM", ("url",), ("email", "password")),
        ConnectionKind("dynamics", "Microsoft Dynamics 365", ("url",)),
        ConnectionKind("salesforce", "Salesforce"),
        ConnectionKind("hubspot", "HubSpot"),
        ConnectionKind("memory", "in-memory test CRM"),
    )
}

@dataclass(frozen=True, slots=True)
class CrmConnection:
    """A connection as anyone may see it: never its credentials."""

    id: int
    name: str
    kind: str
    settings: dict[str, Any]
    enabled: bool
    has_credentials: bool
    key_version: int | None
    created_at: datetime
    updated_at: datetime

    @property
    def url(self) -> str | None:
        value = self.settings.get("url")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class ConnectionCheck:
    """The answer of a connection test: `ok`, or why not (already redacted)."""

    name: str
    ok: bool
    reason: str | None = None
    retriable: bool = False


# -- validation -----------------------------------------------------------------------------


def check_name(name: str) -> str:
    """The name if it is a slug; InputError otherwise."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        shown = name[:80] if isinstance(name, str) else type(name).__name__
        raise InputError(
            f"connection name {shown!r} is not a slug: use 1 to 64 lower-case letters, digits, "
            "'-' and '_', starting and ending with a letter or digit (e.g. main-crm)"
        )
    return name


def check_kind(kind: str) -> ConnectionKind:
    """The kind's description; InputError listing the known kinds otherwise."""
    spec = KINDS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise InputError(f"unknown connection kind {str(kind)[:40]!r}; "
                         f"known kinds: {', '.join(KINDS)}")
    return spec


def check_settings(kind: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as they will be stored (in clear); InputError names the first thing wrong."""
    spec = check_kind(kind)
    if not isinstance(settings, Mapping):
        raise InputError("settings must be an object of names and values")
    clean: dict[str, Any] = {}
    for key, value in settings.items():
        if not isinstance(key, str) or not key:
            raise InputError("setting names must be non-empty text")
        if _SECRET_SETTING.search(key):
            raise InputError(f"setting {key[:60]!r} looks like a credential: settings are "
                             "stored in clear; give it with the credentials instead")
        clean[key] = value
    try:
        size = len(json.dumps(clean, allow_nan=False))
    except (TypeError, ValueError):
        raise InputError(f"settings of a {kind} connection must be JSON values") from None
    if size > MAX_SETTINGS_BYTES:
        raise InputError(f"settings are {size} bytes; at most {MAX_SETTINGS_BYTES} are allowed")
    for key in spec.settings_required:
        if clean.get(key) in (None, ""):
            raise InputError(f"a {kind} connection needs settings.{key} (--{key} on the "
                             "command line)")
    if "url" in clean:
        clean["url"] = _check_url(clean["url"])
    return clean


def _check_url(value: Any) -> str:
    if not isinstance(value, str):
        raise InputError("settings.url must be text, e.g. https://crm.example.com")
    url = value.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        parts = None
    if parts is not None and (parts.username or parts.password):
        raise InputError("settings.url must not carry a user name or password (settings are "
                         "stored in clear); give them as credentials")
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"settings.url {redact(url)[:200]!r} is not an http(s) URL, "
                         "e.g. https://crm.example.com")
    return url.rstrip("/")


def check_credentials(kind: str, credentials: Mapping[str, Any]) -> dict[str, str]:
    """Credentials as they will be encrypted; errors name fields, never values."""
    spec = check_kind(kind)
    if not isinstance(credentials, Mapping):
        raise InputError("credentials must be an object of names and text values")
    clean: dict[str, str] = {}
    for key, value in credentials.items():
        if not isinstance(key, str) or not key:
            raise InputError("credential names must be non-empty text")
        if not isinstance(value, str):
            raise InputError(f"credentials.{key[:60]} must be text")
        clean[key] = value
    for key in spec.credentials_required:
        if not clean.get(key):
            raise InputError(f"a {kind} connection needs credentials.{key}")
    email = clean.get("email")
    if email is not None and not _EMAIL.fullmatch(email):
        raise InputError("credentials.email is not an e-mail address")
    return clean


def secret_values(credentials: Mapping[str, Any]) -> list[str]:
    """The credential values that must never be shown (all but who signs in)."""
    return [v for k, v in credentials.items() if isinstance(v, str) and k not in IDENTITY_FIELDS]


# -- storage --------------------------------------------------------------------------------


def add_connection(
    conn: Connection,
    keyring: Keyring,
    name: str,
    kind: str,
    settings: Mapping[str, Any],
    credentials: Mapping[str, Any],
) -> CrmConnection:
    """Store a new connection, its credentials encrypted under the keyring's current key."""
    check_name(name)
    clean_settings = check_settings(kind, settings)
    clean_credentials = check_credentials(kind, credentials)
    remember_secrets(secret_values(clean_credentials))
    exists = InputError(f"connection {name!r} already exists; remove it first to replace it")
    if conn.execute(select(connections.c.id).where(connections.c.name == name)).first():
        raise exists
    token: str | None = None
    version: int | None = None
    if clean_credentials:
        token, version = keyring.encrypt(name, clean_credentials)
    now = datetime.now(UTC)
    try:
        with conn.begin_nested():
            conn.execute(insert(connections).values(
                name=name, kind=kind, settings=clean_settings, secret=token,
                key_version=version, enabled=True, created_at=now, updated_at=now,
            ))
    except IntegrityError:
        raise exists from None
    return get_connection(conn, name)


_PUBLIC = (
    connections.c.id, connections.c.name, connections.c.kind, connections.c.settings,
    connections.c.enabled, connections.c.secret.is_not(None).label("has_credentials"),
    connections.c.key_version, connections.c.created_at, connections.c.updated_at,
)


def _public(row: Any) -> CrmConnection:
    return CrmConnection(
        id=row.id, name=row.name, kind=row.kind, settings=dict(row.settings or {}),
        enabled=bool(row.enabled), has_credentials=bool(row.has_credentials),
        key_version=row.key_version, created_at=row.created_at, updated_at=row.updated_at,
    )


def _missing(name: str) -> NotFound:
    return NotFound(f"connection {name[:100]!r} does not exist "
                    "(see `leadbridge connections list`)")


def list_connections(conn: Connection) -> list[CrmConnection]:
    """Every connection, by name; credentials are not even read."""
    return [_public(r) for r in conn.execute(select(*_PUBLIC).order_by(connections.c.name))]


def get_connection(conn: Connection, name: str) -> CrmConnection:
    """One connection without its credentials; NotFound if there is none of that name."""
    row = conn.execute(select(*_PUBLIC).where(connections.c.name == name)).first()
    if row is None:
        raise _missing(name)
    return _public(row)


def credentials_for(conn: Connection, keyring: Keyring, name: str) -> dict[str, Any]:
    """The decrypted credentials of a connection, for the engine only: never show them."""
    row = conn.execute(select(connections.c.secret).where(connections.c.name == name)).first()
    if row is None:
        raise _missing(name)
    if row.secret is None:
        return {}
    credentials = keyring.decrypt(name, row.secret)
    remember_secrets(secret_values(credentials))
    return credentials


def remove_connection(conn: Connection, name: str) -> None:
    """Delete a connection and, through the foreign keys, its links, cursors and run log."""
    if conn.execute(delete(connections).where(connections.c.name == name)).rowcount == 0:
        raise _missing(name)


def rotate_secrets(conn: Connection, keyring: Keyring) -> int:
    """Re-encrypt every connection's credentials under the keyring's current key; return how
    many were re-encrypted (those already under it stay as they are)."""
    rows = conn.execute(
        select(connections.c.id, connections.c.name, connections.c.secret)
        .where(connections.c.secret.is_not(None))
        .order_by(connections.c.id)
        .with_for_update()
    ).all()
    done = 0
    now = datetime.now(UTC)
    for row in rows:
        if keyring.version_of(row.secret) == keyring.current:
            continue
        credentials = keyring.decrypt(row.name, row.secret)
        remember_secrets(secret_values(credentials))
        token, version = keyring.encrypt(row.name, credentials)
        conn.execute(update(connections).where(connections.c.id == row.id)
                     .values(secret=token, key_version=version, updated_at=now))
        done += 1
    return done


# -- connectors -----------------------------------------------------------------------------


def _number(settings: Mapping[str, Any], key: str, kind: type[int] | type[float]) -> Any:
    value = settings.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InputError(f"settings.{key} must be a positive number")
    return kind(value)


def _bottlecrm(settings: Mapping[str, Any], credentials: Mapping[str, Any]) -> Connector:
    from leadbridge.connectors.bottlecrm import BottleCRMClient, BottleCRMConnector

    options: dict[str, Any] = {}
    page_size = _number(settings, "page_size", int)
    timeout = _number(settings, "timeout", float)
    if page_size is not None:
        options["page_size"] = page_size
    if timeout is not None:
        options["timeout"] = timeout
    client = BottleCRMClient(str(settings["url"]), str(credentials["email"]),
                             str(credentials["password"]), **options)
    return BottleCRMConnector(client)


# kind -> factory; kinds not listed are looked up on first use (`connector_factory`)
_FACTORIES: dict[str, ConnectorFactory] = {"bottlecrm": _bottlecrm}


def register_connector(kind: str, factory: ConnectorFactory) -> None:
    """Use `factory` for connections of `kind` (for plug-ins and tests)."""
    check_kind(kind)
    _FACTORIES[kind] = factory


def connector_factory(kind: str) -> ConnectorFactory:
    """The factory of a kind's connector. For a kind without one here, the package
    `leadbridge.connectors.<kind>` is imported on first use and its `make_connector` taken."""
    check_kind(kind)
    known = _FACTORIES.get(kind)
    if known is not None:
        return known
    module_name = f"leadbridge.connectors.{kind}"
    unavailable = InputError(f"the connector for {kind} is not available yet")
    try:
        found = importlib.util.find_spec(module_name)
    except ModuleNotFoundError:
        found = None
    if found is None:
        raise unavailable
    made: ConnectorFactory | None = getattr(
        importlib.import_module(module_name), "make_connector", None
    )
    if made is None or not callable(made):
        raise unavailable
    _FACTORIES[kind] = made
    return made


def build_connector(
    kind: str, settings: Mapping[str, Any], credentials: Mapping[str, Any]
) -> Connector:
    """The connector for a connection of `kind` (its package is imported only now);
    InputError if that kind has no connector yet. Release it with `close_connector`."""
    return connector_factory(kind)(settings, credentials)


def close_connector(connector: Connector) -> None:
    """Release what `build_connector` opened: the connector's own `close`, else its client's."""
    for owner in (connector, getattr(connector, "client", None)):
        close = getattr(owner, "close", None)
        if callable(close):
            close()
            return


def check_connector(
    name: str, kind: str, settings: Mapping[str, Any], credentials: Mapping[str, Any]
) -> ConnectionCheck:
    """Build the connector and ask it to reach its CRM. Never raises; the reason never
    shows a credential."""
    hidden = secret_values(credentials)
    remember_secrets(hidden)
    connector: Connector | None = None
    try:
        connector = build_connector(kind, settings, credentials)
        connector.test()
        return ConnectionCheck(name, ok=True)
    except ConnectorError as exc:
        return ConnectionCheck(name, ok=False, reason=redact(str(exc), hidden),
                               retriable=exc.retriable)
    except LeadBridgeError as exc:
        return ConnectionCheck(name, ok=False, reason=redact(str(exc), hidden),
                               retriable=bool(getattr(exc, "retriable", False)))
    except Exception as exc:
        log.warning("testing connection %s failed unexpectedly", name, exc_info=True)
        return ConnectionCheck(
            name, ok=False, reason=f"unexpected {type(exc).__name__}: {redact(str(exc), hidden)}"
        )
    finally:
        if connector is not None:
            try:
                close_connector(connector)
            except Exception:
                log.debug("closing the connector of %s failed", name, exc_info=True)
