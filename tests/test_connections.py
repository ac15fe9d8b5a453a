"""Connections on SQLite and PostgreSQL: encrypted credentials, validation, rotation,
connectors; and the log redaction that keeps their secrets out of log records."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, select, update

from leadbridge import connections as connections_module
from leadbridge.config import load_settings
from leadbridge.connections import (
    KINDS,
    ConnectionKind,
    add_connection,
    build_connector,
    check_connector,
    credentials_for,
    get_connection,
    list_connections,
    remove_connection,
    rotate_secrets,
)
from leadbridge.connectors.base import Connector, ConnectorError
from leadbridge.errors import ConfigError, InputError, NotFound
from leadbridge.keyring import Keyring, load_keyring
from leadbridge.redact import RedactingFilter, install_redaction, redact
from leadbridge.store.tables import connections, metadata

PLANTED = "PLANTED-s3cr3t-4242"
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: connection refused at once
CREDS = {"email": "sync@example.com", "password": PLANTED}


@pytest.fixture
def keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Keyring:
    """A key-file keyring (so it can rotate) in a fresh data folder."""
    for key in list(os.environ):
        if key.startswith("LEADBRIDGE_"):
            monkeypatch.delenv(key)
    return load_keyring(load_settings(tmp_path / "absent.toml", data_dir=str(tmp_path / "kr")))


def add(engine: Engine, keyring: Keyring, name: str = "main-crm", kind: str = "bottlecrm",
        settings: Mapping[str, Any] | None = None,
        credentials: Mapping[str, Any] | None = None) -> None:
    with engine.begin() as conn:
        add_connection(conn, keyring, name, kind,
                       {"url": UNREACHABLE} if settings is None else settings,
                       CREDS if credentials is None else credentials)


def everything_in_clear(engine: Engine) -> str:
    """Every value of every table, as text (the secret column included)."""
    parts: list[str] = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


# -- storage ----------------------------------------------------------------------------------


def test_add_list_get_never_show_credentials(engine: Engine, keyring: Keyring) -> None:
    add(engine, keyring, settings={"url": " https://crm.example.com/ ", "page_size": 50})
    with engine.connect() as conn:
        listed = list_connections(conn)
        one = get_connection(conn, "main-crm")
    assert listed == [one]
    assert one.name == "main-crm" and one.kind == "bottlecrm" and one.enabled
    assert one.settings == {"url": "https://crm.example.com", "page_size": 50}
    assert one.url == "https://crm.example.com"
    assert one.has_credentials and one.key_version == keyring.current
    assert PLANTED not in repr(one) and "password" not in repr(one)


def test_credentials_are_stored_only_encrypted(engine: Engine, keyring: Keyring) -> None:
    add(engine, keyring)
    with engine.connect() as conn:
        row = conn.execute(select(connections)).one()
        assert credentials_for(conn, keyring, "main-crm") == CREDS
    assert PLANTED not in everything_in_clear(engine)
    assert CREDS["email"] not in everything_in_clear(engine)
    assert row.secret.startswith(f"v1:{keyring.current}:")
    assert keyring.decrypt("main-crm", row.secret)["password"] == PLANTED


def test_a_ciphertext_copied_to_another_connection_does_not_decrypt(
    engine: Engine, keyring: Keyring
) -> None:
    add(engine, keyring, "first")
    add(engine, keyring, "second", credentials={"email": "b@example.com", "password": "other-pw"})
    with engine.begin() as conn:
        stolen = conn.execute(
            select(connections.c.secret).where(connections.c.name == "first")).scalar_one()
        conn.execute(update(connections).where(connections.c.name == "second")
                     .values(secret=stolen))
    with engine.connect() as conn, pytest.raises(ConfigError, match="another connection"):
        credentials_for(conn, keyring, "second")


def test_a_connection_without_credentials_stores_no_ciphertext(
    engine: Engine, keyring: Keyring
) -> None:
    add(engine, keyring, "demo", kind="memory", settings={}, credentials={})
    with engine.connect() as conn:
        demo = get_connection(conn, "demo")
        assert credentials_for(conn, keyring, "demo") == {}
    assert not demo.has_credentials and demo.key_version is None


def test_a_duplicate_name_is_refused_and_the_transaction_goes_on(
    engine: Engine, keyring: Keyring
) -> None:
    add(engine, keyring)
    with engine.begin() as conn:
        with pytest.raises(InputError, match="already exists"):
            add_connection(conn, keyring, "main-crm", "bottlecrm", {"url": UNREACHABLE}, CREDS)
        add_connection(conn, keyring, "second", "bottlecrm", {"url": UNREACHABLE}, CREDS)
    with engine.connect() as conn:
        assert [c.name for c in list_connections(conn)] == ["main-crm", "second"]


def test_remove_and_unknown_names(engine: Engine, keyring: Keyring) -> None:
    add(engine, keyring)
    with engine.begin() as conn:
        remove_connection(conn, "main-crm")
    with engine.begin() as conn:
        assert list_connections(conn) == []
        with pytest.raises(NotFound, match="'main-crm' does not exist"):
            remove_connection(conn, "main-crm")
        with pytest.raises(NotFound):
            get_connection(conn, "main-crm")
        with pytest.raises(NotFound):
            credentials_for(conn, keyring, "main-crm")


@pytest.mark.parametrize(
    ("name", "kind", "settings", "credentials", "needle"),
    [
        ("Main CRM", "bottlecrm", {"url": UNREACHABLE}, CREDS, "not a slug"),
        ("-crm", "bottlecrm", {"url": UNREACHABLE}, CREDS, "not a slug"),
        ("x" * 65, "bottlecrm", {"url": UNREACHABLE}, CREDS, "not a slug"),
        ("", "bottlecrm", {"url": UNREACHABLE}, CREDS, "not a slug"),
        ("crm", "pipedrive", {"url": UNREACHABLE}, CREDS, "unknown connection kind 'pipedrive'"),
        ("crm", "bottlecrm", {}, CREDS, "needs settings.url"),
        ("crm", "bottlecrm", {"url": "crm.example.com"}, CREDS, "not an http(s) URL"),
        ("crm", "bottlecrm", {"url": "ftp://crm.example.com"}, CREDS, "not an http(s) URL"),
        ("crm", "bottlecrm", {"url": "http://crm.example.com:99999"}, CREDS,
         "not an http(s) URL"),
        ("crm", "bottlecrm", {"url": f"https://sync:{PLANTED}@crm.example.com"}, CREDS,
         "must not carry a user name or password"),
        ("crm", "bottlecrm", {"url": UNREACHABLE, "api_token": PLANTED}, CREDS,
         "looks like a credential"),
        ("crm", "bottlecrm", {"url": UNREACHABLE, "when": object()}, CREDS, "JSON values"),
        ("crm", "bottlecrm", {"url": UNREACHABLE}, {"email": "sync@example.com"},
         "needs credentials.password"),
        ("crm", "bottlecrm", {"url": UNREACHABLE}, {"email": "sync@example.com", "password": ""},
         "needs credentials.password"),
        ("crm", "bottlecrm", {"url": UNREACHABLE}, {"password": PLANTED},
         "needs credentials.email"),
        ("crm", "bottlecrm", {"url": UNREACHABLE}, {"email": "nobody", "password": PLANTED},
         "not an e-mail address"),
        ("crm", "bottlecrm", {"url": UNREACHABLE}, {**CREDS, "pin": 4242},
         "credentials.pin must be text"),
        ("crm", "dynamics", {}, {}, "needs settings.url"),
    ],
)
def test_malformed_connections_are_refused_with_the_reason(
    engine: Engine, keyring: Keyring, name: str, kind: str, settings: dict[str, Any],
    credentials: dict[str, Any], needle: str,
) -> None:
    with engine.begin() as conn, pytest.raises(InputError) as err:
        add_connection(conn, keyring, name, kind, settings, credentials)
    assert needle in str(err.value)
    assert PLANTED not in str(err.value)
    with engine.connect() as conn:
        assert list_connections(conn) == []


def test_oversized_settings_are_refused(engine: Engine, keyring: Keyring) -> None:
    with engine.begin() as conn, pytest.raises(InputError, match="at most 16384"):
        add_connection(conn, keyring, "crm", "bottlecrm",
                       {"url": UNREACHABLE, "notes": "x" * 20_000}, CREDS)


# -- rotation ---------------------------------------------------------------------------------


def test_rotate_secrets_reencrypts_every_connection_under_the_new_key(
    engine: Engine, keyring: Keyring
) -> None:
    add(engine, keyring, "first")
    add(engine, keyring, "second", credentials={"email": "b@example.com", "password": "pw-two"})
    add(engine, keyring, "demo", kind="memory", settings={}, credentials={})
    with engine.connect() as conn:
        before = {r.name: r.secret for r in conn.execute(select(connections))}
    assert keyring.rotate() == 2
    with engine.begin() as conn:
        assert rotate_secrets(conn, keyring) == 2
    with engine.begin() as conn:
        assert rotate_secrets(conn, keyring) == 0  # nothing left under an old key
        rows = {r.name: r for r in conn.execute(select(connections))}
        assert rows["first"].key_version == rows["second"].key_version == 2
        assert rows["first"].secret.startswith("v1:2:") and rows["first"].secret != before["first"]
        assert rows["demo"].secret is None and rows["demo"].key_version is None
        assert credentials_for(conn, keyring, "first") == CREDS
        assert credentials_for(conn, keyring, "second")["password"] == "pw-two"


def test_rotate_secrets_stops_on_a_ciphertext_it_cannot_open(
    engine: Engine, keyring: Keyring
) -> None:
    add(engine, keyring)
    with engine.begin() as conn:
        secret = conn.execute(select(connections.c.secret)).scalar_one()
        conn.execute(update(connections).values(secret=secret[:-3] + "AAA"))
    keyring.rotate()
    with engine.begin() as conn, pytest.raises(ConfigError, match="main-crm"):
        rotate_secrets(conn, keyring)


# -- connectors -------------------------------------------------------------------------------


def test_build_connector_makes_a_bottlecrm_connector() -> None:
    connector = build_connector("bottlecrm", {"url": UNREACHABLE, "timeout": 2}, CREDS)
    assert isinstance(connector, Connector)
    assert connector.kind == "bottlecrm"
    assert PLANTED not in repr(connector)


def test_a_kind_without_a_connector_package_is_not_available_yet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(KINDS, "nowhere", ConnectionKind("nowhere", "No CRM"))
    with pytest.raises(InputError, match="connector for nowhere is not available yet"):
        build_connector("nowhere", {}, {})
    # a package that exists but offers no make_connector is not a connector either
    monkeypatch.setitem(KINDS, "base", ConnectionKind("base", "not a connector"))
    with pytest.raises(InputError, match="connector for base is not available yet"):
        build_connector("base", {}, {})
    with pytest.raises(InputError, match="unknown connection kind"):
        build_connector("pipedrive", {}, {})


class LeakyConnector:
    """A connector whose failures quote the password, as careless clients do."""

    kind = "memory"
    objects: Mapping[str, Any] = {}
    calls = 0

    def __init__(self, credentials: Mapping[str, Any], failure: type[Exception]) -> None:
        self.password = credentials["password"]
        self.failure = failure
        self.closed = False

    def test(self) -> None:
        if self.failure is ConnectorError:
            raise ConnectorError(f"login refused for password={self.password}", retriable=True)
        raise self.failure(f"boom while sending {self.password}")

    def close(self) -> None:
        self.closed = True


class LeakyFactory:
    """Makes LeakyConnectors that fail with `failure`; keeps them for inspection."""

    def __init__(self) -> None:
        self.failure: type[Exception] = ConnectorError
        self.made: list[LeakyConnector] = []

    def __call__(self, settings: Mapping[str, Any], credentials: Mapping[str, Any]) -> Connector:
        self.made.append(LeakyConnector(credentials, self.failure))
        return cast(Connector, self.made[-1])  # only test() and close() are called


@pytest.fixture
def leaky(monkeypatch: pytest.MonkeyPatch) -> LeakyFactory:
    factory = LeakyFactory()
    monkeypatch.setitem(connections_module._FACTORIES, "memory", factory)
    return factory


def test_check_connector_redacts_the_reason_and_closes_the_connector(
    leaky: LeakyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = check_connector("demo", "memory", {}, {"password": PLANTED})
    assert not result.ok and result.retriable
    assert result.reason == "login refused for password=***"
    assert leaky.made[-1].closed
    leaky.failure = RuntimeError
    result = check_connector("demo", "memory", {}, {"password": PLANTED})
    assert not result.ok and not result.retriable
    assert result.reason == "unexpected RuntimeError: boom while sending ***"
    assert leaky.made[-1].closed
    logged = "\n".join(r.getMessage() + str(r.exc_text) for r in caplog.records)
    assert "failed unexpectedly" in logged
    assert PLANTED not in logged


def test_check_connector_against_an_unreachable_server_fails_retriably(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    result = check_connector("main-crm", "bottlecrm", {"url": UNREACHABLE, "timeout": 5}, CREDS)
    assert not result.ok and result.retriable
    assert result.reason is not None and "did not answer" in result.reason
    assert PLANTED not in result.reason
    assert all(PLANTED not in r.getMessage() for r in caplog.records)


def test_check_connector_reports_settings_its_connector_refuses() -> None:
    result = check_connector("main-crm", "bottlecrm", {"url": UNREACHABLE, "timeout": "soon"},
                             CREDS)
    assert not result.ok and result.reason == "settings.timeout must be a positive number"


# -- log redaction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("login with password=hunter22&user=x", "login with password=***&user=x"),
        ("GET /matomo.php?idsite=1&token_auth=abcdef123 200",
         "GET /matomo.php?idsite=1&token_auth=*** 200"),
        ('{"email": "a@b.c", "password": "p\\"w"}', '{"email": "a@b.c", "password": "***"}'),
        ("{'client_secret': 'xyz', 'n': 1}", "{'client_secret': '***', 'n': 1}"),
        ("Authorization: Bearer abc.def.ghi", "Authorization: Bearer ***"),
        ("headers={'Authorization': 'JWT eyJhbGciOi'}", "headers={'Authorization': 'JWT ***'}"),
        ("sent JWT eyJhbGciOiJIUzI1NiJ9 again", "sent JWT *** again"),
        ("postgresql://lead:pa55word@db:5432/x", "postgresql://lead:***@db:5432/x"),
        ("nothing secret here, password reset page", "nothing secret here, password reset page"),
    ],
)
def test_redact_hides_credential_patterns(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_hides_known_values_but_not_short_ones() -> None:
    assert redact(f"failed for {PLANTED}!", [PLANTED]) == "failed for ***!"
    assert redact("a b c", ["b"]) == "a b c"


def test_records_of_child_loggers_and_libraries_are_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    install_redaction().add([PLANTED])
    logging.getLogger("leadbridge.connectors.somewhere").warning("sending %s now", PLANTED)
    logging.getLogger("httpx").info("GET /x?token_auth=%s", "abcdef1234")
    try:
        raise ValueError(f"refused {PLANTED}")
    except ValueError:
        logging.getLogger("leadbridge.sync").exception("push failed")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["sending *** now", "GET /x?token_auth=***", "push failed"]
    assert "refused ***" in str(caplog.records[-1].exc_text)
    assert PLANTED not in caplog.text


def test_the_filter_keeps_arguments_apart_when_it_can() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d', ("1.2.3.4", "GET",
                               "/matomo.php?token_auth=abcdef123", "1.1", 200), None)
    RedactingFilter().filter(record)
    assert isinstance(record.args, tuple) and len(record.args) == 5  # its formatter unpacks them
    assert record.getMessage() == '1.2.3.4 - "GET /matomo.php?token_auth=*** HTTP/1.1" 200'
    split = logging.LogRecord("x", logging.INFO, __file__, 1, "password=%s", ("hunter22",), None)
    RedactingFilter().filter(split)
    assert split.getMessage() == "password=***" and split.args == ()
