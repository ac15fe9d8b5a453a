"""What every command shares: settings, the engine, and turning hub errors into exit codes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from sqlalchemy import Connection, Engine

from leadbridge.config import Settings, load_settings
from leadbridge.errors import LeadBridgeError, NotFound
from leadbridge.store import make_engine

console = Console()
err_console = Console(stderr=True, soft_wrap=True)
P = ParamSpec("P")
R = TypeVar("R")


def settings() -> Settings:
    return load_settings()


def engine(cfg: Settings | None = None) -> Engine:
    cfg = cfg or settings()
    return make_engine(cfg.database_url, synchronous=cfg.tracking.sqlite_synchronous)


@contextmanager
def transaction() -> Iterator[Connection]:
    eng = engine()
    try:
        with eng.begin() as conn:
            yield conn
    finally:
        eng.dispose()


def friendly_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Print a hub error as one line on stderr; exit 2 (bad input or settings), 3 (not found)."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except NotFound as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(3) from None
        except LeadBridgeError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper
