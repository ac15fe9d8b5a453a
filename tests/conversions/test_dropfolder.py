"""The drop folder, local and on a real SFTP server (asyncssh) started by the test."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
from sqlalchemy import Engine
from starlette.testclient import TestClient

from conversion_seed import VISITOR, counts, seed, stored
from leadbridge.api.app import create_app
from leadbridge.config import Settings
from leadbridge.conversions.dropfolder import (
    LocalFolder,
    open_folder,
    poll_locked,
    poll_once,
    safe_location,
)
from leadbridge.errors import ConfigError
from leadbridge.hub import Hub
from leadbridge.sync.locks import connection_lock
from support import wait_for

HEADER = "action,title,occurred_at,transaction_ref,amount,currency,margin,visitor_id,call_ref\n"
GOOD = (HEADER + f"sale,,2026-03-01,T-1,10,EUR,,{VISITOR},\n"
        + "sale,,2026-03-01,T-2,10,EUR,,nobody00nobody00,\n")
LATIN1 = (HEADER + f"sale,Caf\u00e9,2026-03-01,T-3,10,EUR,,{VISITOR},\n").encode("latin-1")


def drop_settings(settings: Settings, location: str, **values: Any) -> Settings:
    return settings.model_copy(update={"conversions": settings.conversions.model_copy(update={
        "drop": settings.conversions.drop.model_copy(
            update={"location": location, "settle_seconds": 0, **values})})})


def fill(inbox: Path) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "march.csv").write_text(GOOD, encoding="utf-8")
    (inbox / "latin.CSV").write_bytes(LATIN1)
    (inbox / "notes.txt").write_text("not a csv")
    (inbox / ".hidden.csv").write_text(GOOD)
    (inbox / "uploading.csv.part").write_text(GOOD)


def check_processed(inbox: Path, engine: Engine) -> None:
    assert sorted(p.name for p in inbox.iterdir()) == [
        ".hidden.csv", "done", "failed", "notes.txt", "uploading.csv.part"]
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["march.csv",
                                                                  "march.report.json"]
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["latin.CSV",
                                                                    "latin.report.json"]
    done = json.loads((inbox / "done" / "march.report.json").read_text())
    assert (done["status"], done["source"], done["rows_read"], done["accepted"],
            done["rejected"]) == ("done", "dropfolder", 2, 1, 1)
    assert done["rejections"][0]["row"] == 3
    assert done["rejections"][0]["reason"].startswith("unknown visitor id")
    failed = json.loads((inbox / "failed" / "latin.report.json").read_text())
    assert failed["status"] == "failed" and "not UTF-8 text (line 2" in failed["message"]
    [row] = stored(engine)
    assert (row.transaction_ref, row.source) == ("T-1", "dropfolder")


async def test_a_local_drop_moves_each_file_with_its_report(
        engine: Engine, settings: Settings, tmp_path: Path) -> None:
    seed(engine)
    inbox = tmp_path / "inbox"
    fill(inbox)
    cfg = drop_settings(settings, str(inbox))
    async with open_folder(cfg.conversions.drop) as folder:
        processed = await poll_once(engine, cfg, folder)
    assert sorted((p.name, p.moved_to) for p in processed) == [
        ("latin.CSV", "failed/latin.CSV"), ("march.csv", "done/march.csv")]
    check_processed(inbox, engine)
    # the same file dropped again: moved beside the first, every row merged or rejected
    (inbox / "march.csv").write_text(GOOD, encoding="utf-8")
    async with open_folder(cfg.conversions.drop) as folder:
        [again] = await poll_once(engine, cfg, folder)
    assert again.moved_to.startswith("done/march.") and again.moved_to != "done/march.csv"
    assert (again.report.accepted, again.report.merged, again.report.rejected) == (0, 1, 1)
    assert len(list((inbox / "done").glob("march*.report.json"))) == 2
    assert len(stored(engine)) == 1


async def test_a_file_still_growing_is_left_for_the_next_pass(
        engine: Engine, settings: Settings, tmp_path: Path) -> None:
    seed(engine)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    growing = inbox / "big.csv"
    growing.write_text(HEADER)
    cfg = drop_settings(settings, str(inbox), settle_seconds=5)
    waited: list[float] = []

    async def upload_more(seconds: float) -> None:  # the sender writes while we settle
        waited.append(seconds)
        with growing.open("a") as f:
            f.write(f"sale,,2026-03-01,T-9,1,EUR,,{VISITOR},\n")

    assert await poll_once(engine, cfg, LocalFolder(inbox), sleep=upload_more) == []
    assert waited == [5] and growing.exists() and counts(engine)["conversion_imports"] == 0

    async def quiet(seconds: float) -> None:
        return None

    [done] = await poll_once(engine, cfg, LocalFolder(inbox), sleep=quiet)
    assert done.report.accepted == 1 and not growing.exists()


async def test_one_process_polls_at_a_time(engine: Engine, settings: Settings,
                                           tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    fill(inbox)
    cfg = drop_settings(settings, str(inbox))
    with connection_lock(engine, -1) as held:
        assert held
        assert await poll_locked(engine, cfg) is None
    assert (inbox / "march.csv").exists()
    processed = await poll_locked(engine, cfg)
    assert processed is not None and len(processed) == 2


async def test_bad_locations_are_configuration_errors(settings: Settings,
                                                      tmp_path: Path) -> None:
    for location, words in [("", "no drop folder"), ("http://x/y", "use a folder path"),
                            (str(tmp_path / "absent"), "does not exist")]:
        with pytest.raises(ConfigError, match=words):
            async with open_folder(drop_settings(settings, location).conversions.drop) as f:
                await f.list()
    assert safe_location("sftp://bob:s3cret@h:2222/in") == "sftp://bob@h:2222/in"


# -- a real SFTP server ------------------------------------------------------------------

@dataclass
class SftpServer:
    port: int
    root: Path
    key_file: Path
    known_hosts: Path


@pytest.fixture
async def sftp_server(tmp_path: Path) -> AsyncIterator[SftpServer]:
    """asyncssh serving `root` over SFTP on 127.0.0.1, with generated host and client keys."""
    root = tmp_path / "sftp-root"
    root.mkdir()
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    key_file = tmp_path / "client_key"
    client_key.write_private_key(str(key_file))
    authorized = asyncssh.import_authorized_keys(
        client_key.export_public_key().decode())

    def sftp_factory(chan: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
        return asyncssh.SFTPServer(chan, chroot=str(root).encode())

    server = await asyncssh.listen("127.0.0.1", 0, server_host_keys=[host_key],
                                   authorized_client_keys=authorized,
                                   sftp_factory=sftp_factory, allow_scp=False)
    port = server.sockets[0].getsockname()[1]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} "
                           f"{host_key.export_public_key().decode().strip()}\n")
    try:
        yield SftpServer(port, root, key_file, known_hosts)
    finally:
        server.close()
        await server.wait_closed()


async def test_an_sftp_drop_moves_each_file_with_its_report(
        engine: Engine, settings: Settings, sftp_server: SftpServer) -> None:
    seed(engine)
    inbox = sftp_server.root / "inbox"
    fill(inbox)
    cfg = drop_settings(settings, f"sftp://tester@127.0.0.1:{sftp_server.port}/inbox",
                        key_file=sftp_server.key_file, known_hosts=sftp_server.known_hosts)
    processed = await poll_locked(engine, cfg)
    assert processed is not None
    assert sorted((p.name, p.moved_to) for p in processed) == [
        ("latin.CSV", "failed/latin.CSV"), ("march.csv", "done/march.csv")]
    check_processed(inbox, engine)
    assert await poll_locked(engine, cfg) == []  # nothing left to take


async def test_an_sftp_server_with_an_unknown_host_key_is_refused(
        engine: Engine, settings: Settings, sftp_server: SftpServer, tmp_path: Path) -> None:
    inbox = sftp_server.root / "inbox"
    fill(inbox)
    stranger = tmp_path / "other_known_hosts"
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    stranger.write_text(f"[127.0.0.1]:{sftp_server.port} {other}\n")
    cfg = drop_settings(settings, f"sftp://tester@127.0.0.1:{sftp_server.port}/inbox",
                        key_file=sftp_server.key_file, known_hosts=stranger)
    with pytest.raises(ConfigError, match="cannot connect"):
        await poll_locked(engine, cfg)
    assert (inbox / "march.csv").exists() and counts(engine)["conversions"] == 0


async def test_an_sftp_folder_that_does_not_exist_is_named(
        engine: Engine, settings: Settings, sftp_server: SftpServer) -> None:
    cfg = drop_settings(settings, f"sftp://tester@127.0.0.1:{sftp_server.port}/nowhere",
                        key_file=sftp_server.key_file, known_hosts=sftp_server.known_hosts)
    with pytest.raises(ConfigError, match="/nowhere does not exist"):
        await poll_locked(engine, cfg)


def test_serve_polls_the_drop_folder(engine: Engine, settings: Settings,
                                     tmp_path: Path) -> None:
    seed(engine)
    inbox = tmp_path / "inbox"
    fill(inbox)
    cfg = drop_settings(settings, str(inbox), poll_seconds=1)
    hub = Hub(cfg)
    try:
        with TestClient(create_app(cfg, hub)):
            wait_for(lambda: (inbox / "failed" / "latin.report.json").exists()
                     and (inbox / "done" / "march.report.json").exists(), timeout=20)
    finally:
        hub.close()
    check_processed(inbox, engine)


# -- a real FTP server -------------------------------------------------------------------

@pytest.fixture
def ftp_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """pyftpdlib serving a folder on 127.0.0.1 (user tester, password secret)."""
    root = tmp_path / "ftp-root"
    root.mkdir()
    authorizer = DummyAuthorizer()
    authorizer.add_user("tester", "secret", str(root), perm="elradfmwMT")
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer})
    server = FTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.1},
                              daemon=True)
    thread.start()
    try:
        yield server.address[1], root
    finally:
        server.close_all()
        thread.join(timeout=5)


async def test_an_ftp_drop_moves_each_file_with_its_report(
        engine: Engine, settings: Settings, ftp_server: tuple[int, Path]) -> None:
    seed(engine)
    port, root = ftp_server
    inbox = root / "inbox"
    fill(inbox)
    cfg = drop_settings(settings, f"ftp://tester@127.0.0.1:{port}/inbox", password="secret")
    processed = await poll_locked(engine, cfg)
    assert processed is not None
    assert sorted((p.name, p.moved_to) for p in processed) == [
        ("latin.CSV", "failed/latin.CSV"), ("march.csv", "done/march.csv")]
    check_processed(inbox, engine)
    wrong = drop_settings(settings, f"ftp://tester:nope@127.0.0.1:{port}/inbox")
    with pytest.raises(ConfigError, match="cannot connect"):
        await poll_locked(engine, wrong)
