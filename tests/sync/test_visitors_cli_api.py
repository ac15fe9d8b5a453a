"""`leadbridge visitors create-account` and `POST /api/v1/website-visitors/{id}/create-account`,
with good and malformed input, against the memory CRM on both databases."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from leadbridge.config import Settings
from leadbridge.connectors.memory import MemoryCRM
from leadbridge.sync.locks import connection_lock
from visitor_world import account_of, visitor


@pytest.fixture
def run(cli: Any, settings: Settings) -> Any:
    # the same database, data folder and key as the `settings` the connection was made with
    return lambda *args: cli(*args, LEADBRIDGE_DATA_DIR=str(settings.data_dir),
                             LEADBRIDGE_SECRET_KEY="test-secret-key-0123456789abcdef")


def test_cli_creates_once_then_reports_the_association(
        run: Any, engine: Engine, connection_id: int, crm: MemoryCRM) -> None:
    acme, _ = visitor(engine, "Acme", score=60, domain="acme.com")
    first = run("visitors", "create-account", str(acme), "--connection", "tiny")
    assert first.exit_code == 0, first.output
    account_id = account_of(engine, acme)
    assert f"website visitor {acme}: created accounts {account_id} in tiny" in first.output
    again = run("visitors", "create-account", str(acme))
    assert again.exit_code == 0, again.output
    assert f"already associated with accounts {account_id} in tiny" in again.output
    assert len(crm.records["accounts"]) == 1


def test_cli_names_a_matched_account(run: Any, engine: Engine, connection_id: int,
                                     crm: MemoryCRM) -> None:
    account_id = crm.put("accounts", name="Globex Corp", domain="globex.com")
    globex, _ = visitor(engine, "Globex", score=30, domain="globex.com")
    result = run("visitors", "create-account", str(globex))
    assert result.exit_code == 0, result.output
    assert f"existing accounts {account_id} in tiny (same domain)" in result.output


@pytest.mark.parametrize(("args", "code", "said"), [
    (["abc"], 2, "Invalid value for 'ID': Input should be a valid integer"),
    (["1.5"], 2, "Invalid value for 'ID': Input should be a valid integer"),
    ([], 2, "Missing argument 'ID'"),
    (["999999"], 3, "website visitor 999999 does not exist"),
    (["{acme}", "--connection", "nope"], 3, "no connection named 'nope' (connections: tiny)"),
    (["{isp}"], 2, "is classified as isp, not a Website Visitor"),
])
def test_cli_malformed_input_gets_a_clear_error(
        run: Any, engine: Engine, connection_id: int, crm: MemoryCRM, args: list[str],
        code: int, said: str) -> None:
    acme, _ = visitor(engine, "Acme", domain="acme.com")
    isp, _ = visitor(engine, "Telekom", type="isp")
    result = run("visitors", "create-account",
                 *(a.format(acme=acme, isp=isp) for a in args))
    assert result.exit_code == code, result.output
    assert said in plain(result.output)
    assert crm.records["accounts"] == {}


def test_cli_reports_the_crm_refusing(run: Any, engine: Engine, connection_id: int,
                                      crm: MemoryCRM) -> None:
    acme, _ = visitor(engine, "Acme", domain="acme.com")
    crm.refuse("accounts", "name: refused by a CRM rule")
    result = run("visitors", "create-account", str(acme))
    assert result.exit_code == 2
    assert "'tiny' refused the new accounts record for website visitor" in result.output
    assert "name: refused by a CRM rule" in result.output


URL = "/api/v1/website-visitors/{}/create-account"


def plain(output: str) -> str:
    """Console output without the boxes around errors, on one line."""
    return " ".join(output.translate(str.maketrans("", "", "│╭╮╰╯─")).split())


def test_api_creates_then_reports_the_existing_account(
        client: TestClient, auth: dict[str, str], engine: Engine, connection_id: int,
        crm: MemoryCRM) -> None:
    acme, _ = visitor(engine, "Acme", score=60, domain="acme.com")
    created = client.post(URL.format(acme), headers=auth, json={"connection": "tiny"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body == {"website_visitor_id": acme, "connection": "tiny", "crm_object": "accounts",
                    "account_id": account_of(engine, acme), "outcome": "created",
                    "matched_by": None}
    again = client.post(URL.format(acme), headers=auth)  # no body: the only connection
    assert again.status_code == 200 and again.json()["outcome"] == "existing"
    assert again.json()["account_id"] == body["account_id"]
    assert len(crm.records["accounts"]) == 1


@pytest.mark.parametrize(("visitor_id", "body", "status", "said"), [
    ("abc", None, 422, "visitor_id"),
    ("1.5", None, 422, "visitor_id"),
    ("999999", None, 404, "website visitor 999999 does not exist"),
    ("{acme}", {"connection": "nope"}, 404, "no connection named 'nope'"),
    ("{acme}", {"connection": ""}, 422, "connection"),
    ("{acme}", {"connection": "tiny", "extra": 1}, 422, "extra"),
    ("{acme}", ["tiny"], 422, "body"),
    ("{isp}", None, 400, "is classified as isp"),
])
def test_api_malformed_input_gets_a_clear_error(
        client: TestClient, auth: dict[str, str], engine: Engine, connection_id: int,
        crm: MemoryCRM, visitor_id: str, body: Any, status: int, said: str) -> None:
    acme, _ = visitor(engine, "Acme", domain="acme.com")
    isp, _ = visitor(engine, "Telekom", type="isp")
    answer = client.post(URL.format(visitor_id.format(acme=acme, isp=isp)), headers=auth,
                         json=body)
    assert answer.status_code == status, answer.text
    assert said in answer.json()["detail"]
    assert crm.records["accounts"] == {}


def test_api_reports_the_crm_refusing_as_a_bad_gateway(
        client: TestClient, auth: dict[str, str], engine: Engine, connection_id: int,
        crm: MemoryCRM) -> None:
    acme, _ = visitor(engine, "Acme", domain="acme.com")
    crm.refuse("accounts", "name: refused by a CRM rule")
    answer = client.post(URL.format(acme), headers=auth)
    assert answer.status_code == 502
    assert answer.json()["error"] == "crm_error"
    assert "name: refused by a CRM rule" in answer.json()["detail"]


def test_api_needs_a_key(client: TestClient, engine: Engine, connection_id: int,
                         crm: MemoryCRM) -> None:
    acme, _ = visitor(engine, "Acme", domain="acme.com")
    assert client.post(URL.format(acme)).status_code == 401
    assert crm.records["accounts"] == {}


def test_api_answers_conflict_while_a_sync_cycle_holds_the_connection(
        client: TestClient, auth: dict[str, str], engine: Engine, connection_id: int,
        crm: MemoryCRM) -> None:
    acme, _ = visitor(engine, "Acme", domain="acme.com")
    with connection_lock(engine, connection_id) as mine:
        assert mine
        answer = client.post(URL.format(acme), headers=auth)
    assert answer.status_code == 409 and answer.headers["Retry-After"] == "60"
    assert answer.json() == {"error": "connection_busy", "detail": "a sync cycle of "
                             "connection 'tiny' is running; try again in a minute"}
    assert crm.calls == 0
    assert client.post(URL.format(acme), headers=auth).status_code == 201
