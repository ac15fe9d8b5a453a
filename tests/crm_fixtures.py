"""Pytest fixtures for the real BottleCRM peer (registered for the suite in conftest.py).

- `bottlecrm` (session): one BottleCRM server for the whole run, started on first use —
  the venv is built once and reused across runs (see tests/bottlecrm_peer.py).
- `bottlecrm_user` (session): one registered user; every API-registered user is an ADMIN
  and BottleCRM has no tenants, so all tests see one shared set of records: give each
  record a unique natural key (`unique_name`).
- `bottlecrm_api` (function): a fresh, logged-in `BottleCRMClient` for that user.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest

from bottlecrm_peer import BottleCRMServer, BottleCRMUser, ensure_bottlecrm_venv
from leadbridge.connectors.bottlecrm import BottleCRMClient


@pytest.fixture(scope="session")
def bottlecrm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BottleCRMServer]:
    """A running BottleCRM on 127.0.0.1, shared by the session and stopped at its end."""
    server = BottleCRMServer(ensure_bottlecrm_venv(), tmp_path_factory.mktemp("bottlecrm"))
    with server:
        yield server


@pytest.fixture(scope="session")
def bottlecrm_user(bottlecrm: BottleCRMServer) -> BottleCRMUser:
    return bottlecrm.register()


@pytest.fixture
def bottlecrm_api(
    bottlecrm: BottleCRMServer, bottlecrm_user: BottleCRMUser
) -> Iterator[BottleCRMClient]:
    """A client logged in to the shared BottleCRM as the session's user."""
    with BottleCRMClient(bottlecrm.url, bottlecrm_user.email, bottlecrm_user.password) as client:
        client.login()
        yield client


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Names that no other test (or earlier run against the same server) has used."""
    return lambda prefix: f"{prefix} {secrets.token_hex(4)}"
