"""`leadbridge connections ...` and `leadbridge secrets rotate`, in-process, on SQLite and
PostgreSQL. The password never travels in argv, and never comes back out."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import Result

from bottlecrm_peer import BottleCRMServer, BottleCRMUser
from leadbridge.store.tables import connections, metadata
from support import Cli, failed, ok, words

PLANTED = "PLANTED-s3cr3t-4242"
UNREACHABLE = "http://127.0.0.1:9"
SECRET = "cli-secret-key-0123456789abcdef"







def add_main(cli: Cli, password: str = PLANTED, **env: str | None) -> Result:
    return cli("connections", "add", "main-crm", "--kind", "bottlecrm", "--url", UNREACHABLE,
               "--email", "sync@example.com", "--password-stdin", input=password + "\n", **env)


def stored(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(connections))]


def everything_in_clear(engine: Engine) -> str:
    with engine.connect() as conn:
        return "\n".join(str(v) for t in metadata.sorted_tables
                         for row in conn.execute(select(t)) for v in row)


def test_planted_password_appears_nowhere_but_encrypted(
    cli: Cli, engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    added = ok(add_main(cli))
    assert "main-crm added" in words(added.output)
    listed = ok(cli("connections", "list"))
    assert words(listed.output) == f"main-crm bottlecrm {UNREACHABLE} enabled"
    tested = cli("connections", "test", "main-crm")
    text = failed(tested, 1, "failed (retriable):", "main-crm", "did not answer")

    outputs = [added.output, added.stderr, listed.output, listed.stderr, tested.output, text]
    assert all(PLANTED not in o for o in outputs)
    assert caplog.records, "the test above logs (at least httpx), so the check below bites"
    for record in caplog.records:
        assert PLANTED not in record.getMessage()
        assert PLANTED not in str(record.exc_text)
        if record.exc_info:
            assert PLANTED not in repr(record.exc_info[1])
    assert PLANTED not in caplog.text
    [row] = stored(engine)
    assert PLANTED not in str(row["settings"]) and PLANTED not in str(row["secret"])
    assert PLANTED not in everything_in_clear(engine)
    assert str(row["secret"]).startswith("v1:1:")
    key_file = tmp_path / "var" / "keyring.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert PLANTED not in key_file.read_text()


def test_the_password_can_be_typed_at_a_hidden_prompt(cli: Cli, engine: Engine) -> None:
    result = ok(cli("connections", "add", "main-crm", "--kind", "bottlecrm", "--url",
                    UNREACHABLE, "--email", "sync@example.com", input=PLANTED + "\n"))
    assert "Password for sync@example.com" in result.stderr
    assert PLANTED not in result.output and PLANTED not in result.stderr
    [row] = stored(engine)
    assert row["secret"] and PLANTED not in str(row["secret"])


def test_there_is_no_password_option(cli: Cli) -> None:
    result = cli("connections", "add", "main-crm", "--kind", "bottlecrm", "--url", UNREACHABLE,
                 "--email", "sync@example.com", "--password", PLANTED)
    assert result.exit_code == 2
    assert "No such option" in result.output + result.stderr


def test_remove_then_unknown_names_exit_3(cli: Cli, engine: Engine) -> None:
    ok(add_main(cli))
    assert "connection main-crm removed" in ok(cli("connections", "remove", "main-crm")).output
    assert stored(engine) == []
    failed(cli("connections", "remove", "main-crm"), 3, "'main-crm' does not exist")
    failed(cli("connections", "test", "main-crm"), 3, "'main-crm' does not exist")
    assert ok(cli("connections", "list")).output == ""


@pytest.mark.parametrize(
    ("args", "stdin", "needle"),
    [
        (["Main CRM", "--kind", "bottlecrm", "--url", UNREACHABLE, "--email", "a@b.example"],
         PLANTED, "'Main CRM' is not a slug"),
        (["crm", "--kind", "pipedrive", "--url", UNREACHABLE, "--email", "a@b.example"],
         PLANTED, "unknown connection kind 'pipedrive'; known kinds: bottlecrm"),
        (["crm", "--kind", "bottlecrm", "--email", "a@b.example"], PLANTED,
         "needs settings.url (--url on the command line)"),
        (["crm", "--kind", "bottlecrm", "--url", "crm.example.com", "--email", "a@b.example"],
         PLANTED, "not an http(s) URL"),
        (["crm", "--kind", "bottlecrm", "--url", UNREACHABLE, "--email", "a@b.example"],
         "", "--password-stdin was given but stdin is empty"),
        (["crm", "--kind", "bottlecrm", "--url", UNREACHABLE], PLANTED,
         "needs credentials.email"),
        (["crm", "--kind", "bottlecrm", "--url", UNREACHABLE, "--email", "a@b.example",
          "--setting", "password=x"], PLANTED, "looks like a credential"),
        (["crm", "--kind", "bottlecrm", "--url", UNREACHABLE, "--email", "a@b.example",
          "--setting", "novalue"], PLANTED, "write it as NAME=VALUE"),
    ],
)
def test_malformed_add_exits_2_with_the_reason(
    cli: Cli, engine: Engine, args: list[str], stdin: str, needle: str
) -> None:
    result = cli("connections", "add", *args, "--password-stdin", input=stdin)
    text = failed(result, 2, needle)
    assert PLANTED not in text and PLANTED not in result.output
    assert stored(engine) == []


def test_a_duplicate_name_exits_2(cli: Cli) -> None:
    ok(add_main(cli))
    failed(add_main(cli), 2, "connection 'main-crm' already exists")


def test_secrets_rotate_reencrypts_under_a_new_key_file_version(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    ok(add_main(cli))
    result = ok(cli("secrets", "rotate"))
    assert "key version 2" in words(result.output) and "1 connection(s) re-encrypted" in \
        words(result.output)
    [row] = stored(engine)
    assert row["key_version"] == 2 and str(row["secret"]).startswith("v1:2:")
    keys = json.loads((tmp_path / "var" / "keyring.json").read_text())
    assert keys["current"] == 2 and sorted(keys["keys"]) == ["1", "2"]
    # the credentials still open: the test reaches the (unreachable) server, not a key error
    failed(cli("connections", "test", "main-crm"), 1, "did not answer")


def test_changing_the_secret_key_needs_the_previous_one_to_rotate(
    cli: Cli, engine: Engine
) -> None:
    ok(add_main(cli, LEADBRIDGE_SECRET_KEY=SECRET))
    new = "a-brand-new-secret-key-abcdef0123"
    failed(cli("connections", "test", "main-crm", LEADBRIDGE_SECRET_KEY=new), 2,
           "different LEADBRIDGE_SECRET_KEY")
    failed(cli("secrets", "rotate", LEADBRIDGE_SECRET_KEY=new), 2,
           "different LEADBRIDGE_SECRET_KEY")
    result = ok(cli("secrets", "rotate", "--previous-key-stdin", input=SECRET + "\n",
                    LEADBRIDGE_SECRET_KEY=new))
    assert "LEADBRIDGE_SECRET_KEY" in result.output and "1 connection(s)" in words(result.output)
    assert SECRET not in result.output and new not in result.output
    failed(cli("connections", "test", "main-crm", LEADBRIDGE_SECRET_KEY=new), 1, "did not answer")


def test_previous_key_only_applies_with_a_secret_key(cli: Cli) -> None:
    failed(cli("secrets", "rotate", "--previous-key-stdin", input="x\n"), 2,
           "only applies when LEADBRIDGE_SECRET_KEY is set")


def test_a_key_file_readable_by_others_stops_add_with_exit_2(
    cli: Cli, tmp_path: Path
) -> None:
    ok(add_main(cli))
    (tmp_path / "var" / "keyring.json").chmod(0o644)
    failed(cli("connections", "test", "main-crm"), 2, "chmod 600")


@pytest.mark.e2e
def test_connections_test_signs_in_to_the_real_bottlecrm(
    cli: Cli, bottlecrm: BottleCRMServer, bottlecrm_user: BottleCRMUser
) -> None:
    ok(cli("connections", "add", "real", "--kind", "bottlecrm", "--url", bottlecrm.url,
           "--email", bottlecrm_user.email, "--password-stdin",
           input=bottlecrm_user.password + "\n"))
    assert "ok: real (bottlecrm) answered" in ok(cli("connections", "test", "real")).output
    ok(cli("connections", "add", "wrong", "--kind", "bottlecrm", "--url", bottlecrm.url,
           "--email", bottlecrm_user.email, "--password-stdin", input=PLANTED + "\n"))
    result = cli("connections", "test", "wrong")
    text = failed(result, 1, "failed:", "refused the login")
    assert PLANTED not in text and PLANTED not in result.output
