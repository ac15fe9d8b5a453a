"""`python -m leadbridge` is the `leadbridge` command."""

from __future__ import annotations

from leadbridge.cli import app

app(prog_name="leadbridge")
