"""Test setup: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL is the local server on 127.0.0.1:5432 (trust auth); if it is down it is started.
Each test run works in a scratch database that is dropped at the end.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import Result
from sqlalchemy import Engine, text
from starlette.testclient import TestClient
from typer.testing import CliRunner

from leadbridge.api.app import create_app
from leadbridge.apikeys import create_key
from leadbridge.cli import app as cli_app
from leadbridge.config import Settings, load_settings
from leadbridge.hub import Hub
from leadbridge.jobs import ensure_job_schema
from leadbridge.sites import add_site
from leadbridge.store import make_engine, upgrade
from leadbridge.store.tables import metadata
from support import TEST_RANGES, Cli

pytest_plugins = ["crm_fixtures"]

PG_ADMIN = os.environ.get("LEADBRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgresql"]


def _pg_up() -> bool:
    try:
        psycopg.connect(PG_ADMIN, connect_timeout=2).close()
        return True
    except psycopg.OperationalError:
        return False


def _start_pg() -> None:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions:
        raise RuntimeError("PostgreSQL is down and no local cluster is installed")
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        check=False,
    )
    for _ in range(60):
        if _pg_up():
            return
        time.sleep(0.5)
    raise RuntimeError("PostgreSQL did not start on 127.0.0.1:5432")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A scratch PostgreSQL database, migrated once, dropped after the run."""
    if not _pg_up():
        _start_pg()
    name = f"lb_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    engine = make_engine(url)
    upgrade(engine)
    ensure_job_schema(engine)  # the served app runs procrastinate workers on PostgreSQL
    engine.dispose()
    yield url
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


def _truncate_pg(url: str) -> None:
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a fresh SQLite file, or the truncated PostgreSQL scratch db."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "leadbridge.db"
        path.write_bytes(template.read_bytes())
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_url")
    _truncate_pg(url)
    return url


@pytest.fixture
def pg_db_url(pg_url: str) -> str:
    """`db_url` on PostgreSQL alone, for what SQLite does not have (row locks between
    writers): a module overrides `db_url` with it."""
    _truncate_pg(pg_url)
    return pg_url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """`cli(*args, input=None, **env)`: `leadbridge ARGS...` on the test database, from
    tmp_path (no leadbridge.toml), with data in tmp_path/var and no other LEADBRIDGE_* variable
    than those given in `env` (None removes one)."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("LEADBRIDGE_"):
            monkeypatch.delenv(key)
    runner = CliRunner()

    def run(*args: str, input: str | None = None, **env: str | None) -> Result:
        full: dict[str, str | None] = {
            "LEADBRIDGE_DATABASE_URL": db_url,
            "LEADBRIDGE_DATA_DIR": str(tmp_path / "var"),
            "LEADBRIDGE_CONFIG": None,
            **env,
        }
        # other fixtures (settings) may clear the environment or move after this one ran
        monkeypatch.chdir(tmp_path)
        return runner.invoke(cli_app, list(args), env=full, input=input)

    return run


@pytest.fixture
def settings(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("LEADBRIDGE_"):
            monkeypatch.delenv(key)
    ranges = tmp_path / "ranges.csv"
    ranges.write_text(TEST_RANGES, encoding="utf-8")
    return load_settings(
        tmp_path / "absent.toml",
        database_url=db_url,
        data_dir=str(tmp_path / "var"),
        secret_key="test-secret-key-0123456789abcdef",
        identify={"ip_ranges_csv": str(ranges)},
        # the served app runs no jobs unless a test asks (tests/jobs/test_immediate_push.py)
        jobs={"run_in_serve": False},
    )


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.fixture
def hub(settings: Settings) -> Iterator[Hub]:
    """A hub on the test database (its writer thread runs while a `client` is open)."""
    the_hub = Hub(settings)
    yield the_hub
    the_hub.close()


@pytest.fixture
def site_id(hub: Hub) -> int:
    with hub.engine.begin() as conn:
        site = add_site(conn, "Example", ["www.example.com", "*.example.org"])
    hub.refresh(force=True)
    return site.id


@pytest.fixture
def api_key(hub: Hub) -> str:
    with hub.engine.begin() as conn:
        _, clear = create_key(conn, "tests")
    return clear


@pytest.fixture
def client(hub: Hub, site_id: int) -> Iterator[TestClient]:
    """The whole app in-process, with its lifespan (writer thread) running."""
    with TestClient(create_app(hub.settings, hub), client=("198.51.100.7", 50000)) as c:
        yield c


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}
