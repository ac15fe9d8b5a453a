"""`leadbridge connections add|list|test|remove` and `leadbridge secrets rotate`.

Passwords never come from the command line (shell history, `ps`): they are read from stdin
with `--password-stdin` or asked for with hidden input.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from leadbridge.cli.common import (
    console,
    engine,
    err_console,
    friendly_errors,
    settings,
    transaction,
)
from leadbridge.connections import (
    add_connection,
    check_connector,
    check_credentials,
    check_kind,
    check_name,
    check_settings,
    credentials_for,
    get_connection,
    list_connections,
    remove_connection,
    rotate_secrets,
)
from leadbridge.errors import InputError
from leadbridge.keyring import load_keyring
from leadbridge.redact import install_redaction
from leadbridge.sync.budget import BudgetStatus, budget_status

app = typer.Typer(help="CRM connections (credentials stored encrypted).", no_args_is_help=True)
secrets_app = typer.Typer(help="The keys that encrypt connection credentials.",
                          no_args_is_help=True)


def _read_stdin_line(what: str) -> str:
    """One value from stdin, without its line ending (as `docker login --password-stdin`)."""
    value = sys.stdin.read()
    if value.endswith("\n"):
        value = value[:-1]
    if value.endswith("\r"):
        value = value[:-1]
    if not value:
        raise InputError(f"--{what}-stdin was given but stdin is empty")
    return value


def _setting_pairs(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--setting {pair[:60]!r}: write it as NAME=VALUE")
        out[key.strip()] = value
    return out


@app.command("add")
@friendly_errors
def add(
    name: Annotated[str, typer.Argument(help="a slug, e.g. main-crm")],
    kind: Annotated[str, typer.Option("--kind", help="bottlecrm, dynamics, salesforce, "
                                      "hubspot or memory")],
    url: Annotated[str | None, typer.Option("--url", help="the CRM's address")] = None,
    email: Annotated[str | None, typer.Option("--email", help="the user to sign in as")] = None,
    setting: Annotated[list[str], typer.Option(
        "--setting", help="another non-secret setting, NAME=VALUE; repeatable")] = [],  # noqa: B006
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="read the password from stdin instead of asking")] = False,
) -> None:
    """Add a connection; its credentials are encrypted before they are stored."""
    install_redaction()
    check_name(name)
    spec = check_kind(kind)
    conn_settings = _setting_pairs(setting)
    if url is not None:
        conn_settings["url"] = url
    conn_settings = check_settings(kind, conn_settings)
    credentials: dict[str, str] = {}
    if email is not None:
        credentials["email"] = email
    if password_stdin:
        credentials["password"] = _read_stdin_line("password")
    elif "password" in spec.credentials_required:
        credentials["password"] = typer.prompt(f"Password for {email or name}", hide_input=True,
                                               err=True)
    credentials = check_credentials(kind, credentials)
    keyring = load_keyring(settings())
    with transaction() as conn:
        made = add_connection(conn, keyring, name, kind, conn_settings, credentials)
    console.print(f"connection {made.name} added ({made.kind}; credentials encrypted with key "
                  f"version {made.key_version})", highlight=False)


@app.command("list")
@friendly_errors
def list_() -> None:
    """Name, kind, URL and state of every connection (never credentials)."""
    with transaction() as conn:
        found = list_connections(conn)
    for c in found:
        state = "enabled" if c.enabled else "disabled"
        console.print(f"{c.name}\t{c.kind}\t{c.url or '-'}\t{state}", highlight=False)


@app.command("test")
@friendly_errors
def test(name: str) -> None:
    """Reach the connection's CRM and sign in; exit 1 with the reason when that fails."""
    install_redaction()
    keyring = load_keyring(settings())
    with transaction() as conn:
        found = get_connection(conn, name)
        credentials = credentials_for(conn, keyring, name)
    result = check_connector(found.name, found.kind, found.settings, credentials)
    if result.ok:
        console.print(f"ok: {found.name} ({found.kind}) answered", highlight=False)
        return
    kind = "failed (retriable)" if result.retriable else "failed"
    err_console.print(f"[red]{kind}:[/red] {found.name}: {result.reason}", highlight=False)
    raise typer.Exit(1)


@app.command("budget")
@friendly_errors
def budget(name: Annotated[str | None, typer.Argument(help="one connection; all if left out")]
           = None) -> None:
    """How many CRM calls each connection made today and in this window, against its
    `sync.budget`, what the CRM last said of its own limits, and whether syncs wait."""
    cfg = settings()
    eng = engine(cfg)
    try:
        with eng.connect() as conn:
            found = [get_connection(conn, name)] if name else list_connections(conn)
        for c in found:
            console.print(_budget_line(budget_status(eng, cfg.sync, c.id, c.name)),
                          highlight=False, soft_wrap=True)
    finally:
        eng.dispose()


def _budget_line(status: BudgetStatus) -> str:
    limits = status.limits
    day = limits.calls_per_day
    window = limits.calls_per_window
    parts = [f"{status.connection}: {status.day_calls} calls today (UTC)"
             + (f" of {day}" if day else ", no daily limit"),
             f"{status.window_calls} in this {limits.window_seconds}-second window"
             + (f" of {window}" if window else "")]
    if status.crm_window is not None:
        left = "?" if status.crm_remaining is None else f"{status.crm_remaining:g}"
        limit = "" if status.crm_limit is None else f" of {status.crm_limit:g}"
        parts.append(f"the CRM said {left}{limit} left ({status.crm_window})")
    if status.blocked_until is not None:
        parts.append(f"syncs wait until {status.blocked_until.isoformat(timespec='seconds')}: "
                     f"{status.blocked_reason}")
    else:
        parts.append("syncs may run")
    return "; ".join(parts)


@app.command("remove")
@friendly_errors
def remove(name: str) -> None:
    """Delete a connection with its links, cursors and run log."""
    with transaction() as conn:
        remove_connection(conn, name)
    console.print(f"connection {name} removed", highlight=False)


@secrets_app.command("rotate")
@friendly_errors
def rotate(
    previous_key_stdin: Annotated[bool, typer.Option(
        "--previous-key-stdin",
        help="after changing LEADBRIDGE_SECRET_KEY: read the old value from stdin so "
             "credentials encrypted with it can be re-encrypted")] = False,
) -> None:
    """Make a new key current (key file) and re-encrypt every connection's credentials."""
    install_redaction()
    cfg = settings()
    keyring = load_keyring(cfg)
    if previous_key_stdin:
        if not cfg.secret_key:
            raise InputError("--previous-key-stdin only applies when LEADBRIDGE_SECRET_KEY "
                             "is set")
        keyring.add_secret_key(_read_stdin_line("previous-key"))
    if not cfg.secret_key:
        keyring.rotate()
    with transaction() as conn:
        count = rotate_secrets(conn, keyring)
    console.print(f"key version {keyring.current} ({keyring.source}) is current; "
                  f"{count} connection(s) re-encrypted", highlight=False)
