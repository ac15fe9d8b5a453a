"""`leadbridge sync` and `leadbridge sync errors`, in-process, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from leadbridge import connections as registry
from leadbridge.config import load_settings
from leadbridge.connectors.memory import MemoryCRM
from leadbridge.keyring import load_keyring
from leadbridge.store.tables import contacts
from support import scalar

NOW = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture
def crm(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryCRM]:
    tiny = MemoryCRM(batch_size=10)
    monkeypatch.setitem(registry._FACTORIES, "memory", lambda settings, credentials: tiny)
    yield tiny


@pytest.fixture
def run(cli: Any, db_url: str, engine: Engine, tmp_path: Path) -> Any:
    cfg = load_settings(tmp_path / "absent.toml", database_url=db_url,
                        data_dir=str(tmp_path / "var"), secret_key="sync-cli-secret")
    with engine.begin() as conn:
        registry.add_connection(conn, load_keyring(cfg), "tiny", "memory", {}, {})
        conn.execute(insert(contacts).values(email="ann@example.com", name="Ann",
                                             created_at=NOW, updated_at=NOW, hit_count=0,
                                             score_weight=0.0))

    return lambda *args: cli(*args, LEADBRIDGE_SECRET_KEY="sync-cli-secret")


def test_dry_run_prints_the_plan_and_writes_nothing(run: Any, crm: MemoryCRM,
                                                    engine: Engine) -> None:
    result = run("sync", "tiny", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "plan" in result.output and "create" in result.output
    assert crm.records["contacts"] == {}
    assert scalar(engine, "SELECT count(*) FROM object_links") == 0


def test_sync_creates_then_reports_nothing_to_do(run: Any, crm: MemoryCRM, engine: Engine) -> None:
    result = run("sync", "tiny")
    assert result.exit_code == 0, result.output
    assert "1 created" in result.output
    assert [r["email"] for r in crm.records["contacts"].values()] == ["ann@example.com"]
    again = run("sync")  # every enabled connection
    assert again.exit_code == 0 and "created" not in again.output


def test_error_queue_lists_retries_and_dismisses(run: Any, crm: MemoryCRM, engine: Engine) -> None:
    crm.refuse("contacts", "email: invalid", ref=str(scalar(engine, "SELECT id FROM contacts")))
    failed = run("sync", "tiny")
    assert failed.exit_code == 1 and "1 failed" in failed.output
    listing = run("sync", "errors")
    assert listing.exit_code == 0 and "email: invalid" in listing.output
    error_id = listing.output.split()[0]
    assert run("sync", "errors", "--retry", error_id).exit_code == 0
    assert run("sync", "errors", "--dismiss", error_id).exit_code == 0
    assert "no sync errors" in run("sync", "errors").output
    assert error_id in run("sync", "errors", "--all").output


def test_bad_sync_arguments_name_the_problem(run: Any, crm: MemoryCRM) -> None:
    unknown = run("sync", "nope")
    assert unknown.exit_code == 3 and "nope" in unknown.output
    misplaced = run("sync", "tiny", "--retry", "1")
    assert misplaced.exit_code == 2 and "sync errors" in misplaced.output
    missing = run("sync", "errors", "--retry", "999")
    assert missing.exit_code == 3 and "999" in missing.output


def test_an_invalid_mapping_manual_is_a_clear_error(run: Any, crm: MemoryCRM,
                                                    tmp_path: Path) -> None:
    (tmp_path / "leadbridge.toml").write_text(
        '[sync.mappings.tiny]\nobjects = [{hub = "contact", crm = "contacts", '
        'match = ["phone"], fields = [{hub = "email", crm = "email"}]}]\n', encoding="utf-8")
    result = run("sync", "tiny")
    assert result.exit_code == 2
    assert "sync.mappings.tiny" in result.output and "phone" in result.output
