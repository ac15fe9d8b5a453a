"""The `leadbridge` command: one sub-command module per topic."""

from __future__ import annotations

from leadbridge.cli.main import app

__all__ = ["app"]
