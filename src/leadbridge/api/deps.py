"""Shared dependencies: the hub, a database connection, and the API key every route needs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection

from leadbridge.apikeys import ApiKey
from leadbridge.hub import Hub

_bearer = HTTPBearer(auto_error=False, description="an API key from `leadbridge apikeys create`")


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    hub.refresh()
    return hub


HubDep = Annotated[Hub, Depends(get_hub)]


def get_conn(hub: HubDep) -> Iterator[Connection]:
    """A connection in a transaction, committed when the route returns without error."""
    with hub.engine.connect() as conn, conn.begin():
        yield conn


ConnDep = Annotated[Connection, Depends(get_conn)]


def require_key(
    hub: HubDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> ApiKey:
    if creds is None or creds.scheme.lower() != "bearer":
        raise HTTPException(401, detail="send an API key: Authorization: Bearer <key>",
                            headers={"WWW-Authenticate": "Bearer"})
    key = hub.api_key(creds.credentials)
    if key is None:
        raise HTTPException(401, detail="the API key is unknown or revoked",
                            headers={"WWW-Authenticate": "Bearer"})
    return key


CurrentKey = Annotated[ApiKey, Depends(require_key)]
