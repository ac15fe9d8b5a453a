"""Connections: list, add, remove and test CRM connections.

Credentials go in with `POST` and never come out: responses carry settings and whether
credentials are stored, and a failed test's reason is redacted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field, SecretStr

from leadbridge.api.deps import ConnDep, CurrentKey, HubDep
from leadbridge.connections import (
    CrmConnection,
    add_connection,
    check_connector,
    credentials_for,
    get_connection,
    list_connections,
    remove_connection,
)
from leadbridge.errors import ConfigError
from leadbridge.keyring import Keyring, load_keyring
from leadbridge.redact import install_redaction
from leadbridge.sync.budget import budget_status

router = APIRouter(prefix="/api/v1/connections", tags=["connections"])


def get_keyring(request: Request, hub: HubDep) -> Keyring:
    """The app's keyring, loaded on first use; a broken key setup answers 500, clearly."""
    keyring: Keyring | None = getattr(request.app.state, "keyring", None)
    if keyring is None:
        install_redaction()
        try:
            keyring = load_keyring(hub.settings)
        except ConfigError as exc:
            raise HTTPException(500, detail=f"connection credentials cannot be encrypted or "
                                            f"read: {exc}") from None
        request.app.state.keyring = keyring
    return keyring


KeyringDep = Annotated[Keyring, Depends(get_keyring)]


class ConnectionCreate(BaseModel):
    model_config = {"extra": "forbid"}
    name: str = Field(min_length=1, max_length=64, description="a slug, e.g. main-crm")
    kind: str = Field(min_length=1, max_length=30,
                      description="bottlecrm, dynamics, salesforce, hubspot or memory")
    settings: dict[str, Any] = Field(default_factory=dict,
                                     description="non-secret settings, e.g. url")
    credentials: dict[str, SecretStr] = Field(
        default_factory=dict, description="e.g. email and password; stored encrypted, "
                                          "never returned")


class ConnectionPublic(BaseModel):
    name: str
    kind: str
    settings: dict[str, Any]
    enabled: bool
    has_credentials: bool
    key_version: int | None
    created_at: datetime
    updated_at: datetime


class ConnectionTestResult(BaseModel):
    name: str
    ok: bool
    reason: str | None = None
    retriable: bool = False


def _public(c: CrmConnection) -> ConnectionPublic:
    return ConnectionPublic(
        name=c.name, kind=c.kind, settings=c.settings, enabled=c.enabled,
        has_credentials=c.has_credentials, key_version=c.key_version,
        created_at=c.created_at, updated_at=c.updated_at,
    )


@router.get("", response_model=list[ConnectionPublic])
def get_connections(conn: ConnDep, _key: CurrentKey) -> list[ConnectionPublic]:
    return [_public(c) for c in list_connections(conn)]


@router.post("", response_model=ConnectionPublic, status_code=201)
def post_connection(
    body: ConnectionCreate, conn: ConnDep, keyring: KeyringDep, _key: CurrentKey
) -> ConnectionPublic:
    credentials = {k: v.get_secret_value() for k, v in body.credentials.items()}
    made = add_connection(conn, keyring, body.name, body.kind, body.settings, credentials)
    return _public(made)


@router.delete("/{name}", status_code=204)
def delete_connection(name: str, conn: ConnDep, _key: CurrentKey) -> Response:
    remove_connection(conn, name)
    return Response(status_code=204)


@router.get("/{name}/budget")
def get_connection_budget(name: str, conn: ConnDep, hub: HubDep,
                          _key: CurrentKey) -> dict[str, Any]:
    """Calls made today (UTC) and in the current window against `sync.budget`, what the CRM
    last said of its own limits (`crm`), and until when syncs wait (`blocked_until`, null when
    they may run)."""
    found = get_connection(conn, name)
    return budget_status(hub.engine, hub.settings.sync, found.id, found.name).to_dict()


@router.post("/{name}/test", response_model=ConnectionTestResult)
def post_connection_test(
    name: str, hub: HubDep, keyring: KeyringDep, _key: CurrentKey
) -> ConnectionTestResult:
    """Reach the CRM and sign in. A failure is an answer (`ok: false` and the reason), not
    an HTTP error; the database is not held while the CRM is asked."""
    with hub.engine.connect() as conn:
        found = get_connection(conn, name)
        try:
            credentials = credentials_for(conn, keyring, name)
        except ConfigError as exc:
            return ConnectionTestResult(name=name, ok=False, reason=str(exc))
    result = check_connector(found.name, found.kind, found.settings, credentials)
    return ConnectionTestResult(name=result.name, ok=result.ok, reason=result.reason,
                                retriable=result.retriable)
