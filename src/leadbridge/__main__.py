"""`python -m leadbridge` is the `leadbridge` command."""

from __future__ import annotations

from leadbridge.cli import app

if __name__ == "__main__":  # not when a writer process is spawned from here
    app(prog_name="leadbridge")
