"""Storage: tables, engines, migrations. Imports nothing of the hub above it."""

from __future__ import annotations

from leadbridge.store.db import make_engine, normalise_url, writing
from leadbridge.store.migrate import upgrade

__all__ = ["make_engine", "normalise_url", "upgrade", "writing"]
