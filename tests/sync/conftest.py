"""Fixtures of the sync tests: a memory CRM registered as the `memory` connector kind, and a
connection `tiny` to it (with the decay epoch the seeds score with)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from leadbridge import connections as registry
from leadbridge.config import Settings
from leadbridge.connectors.memory import MemoryCRM
from leadbridge.keyring import load_keyring
from leadbridge.scoring.ruleset import DECAY_EPOCH
from leadbridge.store.state import set_state
from visitor_seed import DECAY


@pytest.fixture
def crm(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryCRM]:
    tiny = MemoryCRM(batch_size=10)
    monkeypatch.setitem(registry._FACTORIES, "memory", lambda settings, credentials: tiny)
    yield tiny


@pytest.fixture
def connection_id(engine: Engine, settings: Settings, crm: MemoryCRM) -> int:
    """The connection `tiny` (memory CRM), with the decay epoch the seeds score with."""
    with engine.begin() as conn:
        set_state(conn, DECAY_EPOCH, DECAY.epoch.isoformat())
        return registry.add_connection(conn, load_keyring(settings), "tiny", "memory", {},
                                       {}).id


