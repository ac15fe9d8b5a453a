"""The drop folder: CSV files of conversions left in a folder, here or on an SFTP/FTP server.

Each pass lists the folder's `*.csv` files (names starting with a dot, and any other suffix
such as `.csv.part`, are ignored), waits `settle_seconds` and lists again: only files whose
size and modification time did not change in between are taken, so a file still being
uploaded is left for a later pass. (Uploading as `NAME.csv.part` and renaming it when
complete is the safe convention; the settle check covers senders that cannot rename.)

A taken file is imported like `leadbridge conversions import`, then moved to `done/` (it was
read; rejected rows are in its report) or `failed/` (refused whole: not UTF-8, no usable
header), with `NAME.report.json` beside it. A file is moved only after its import is
committed; if the hub stops in between, the next pass imports it again and every row comes
back merged, so nothing is stored twice. One process polls at a time (a lock in the database).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol
from urllib.parse import unquote, urlsplit

from sqlalchemy import Engine

from leadbridge.config import DropFolderSettings, Settings
from leadbridge.conversions.importer import ImportReport, import_csv
from leadbridge.errors import ConfigError
from leadbridge.sync.locks import connection_lock

__all__ = ["DroppedFile", "Folder", "LocalFolder", "open_folder", "poll_once", "run_poller"]

log = logging.getLogger(__name__)
DONE, FAILED = "done", "failed"
# the lock the drop folder takes among the sync locks (connection ids are positive)
DROP_FOLDER_LOCK = -1
_KEEP_REJECTIONS = 1000


@dataclass(frozen=True, slots=True)
class DroppedFile:
    name: str
    size: int
    mtime: float


class Folder(Protocol):
    """Where dropped files are: the few operations a pass needs."""

    async def list(self) -> list[DroppedFile]:
        """The `*.csv` files at the folder's top level."""
        ...

    async def download(self, name: str, dest: IO[bytes]) -> None: ...

    async def finish(self, name: str, outcome: str, report: bytes) -> str:
        """Move the file into `outcome`/ with NAME.report.json beside it; the new path."""
        ...


def safe_location(location: str) -> str:
    """The location without a password, for logs and messages."""
    url = urlsplit(location)
    if url.password is None:
        return location
    host = url.hostname or ""
    netloc = f"{url.username}@{host}" + (f":{url.port}" if url.port else "")
    return url._replace(netloc=netloc).geturl()


def is_candidate(name: str) -> bool:
    return name.lower().endswith(".csv") and not name.startswith(".")


def report_name(name: str) -> str:
    return f"{name[:-4] if name.lower().endswith('.csv') else name}.report.json"


def free_name(name: str, taken: Callable[[str], bool]) -> str:
    """`name`, or `name` with a UTC time stamp when a file of that name is already there."""
    if not taken(name):
        return name
    stem, dot, suffix = name.rpartition(".")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stem}.{stamp}.{suffix}" if dot else f"{name}.{stamp}"


class LocalFolder:
    def __init__(self, path: Path) -> None:
        self.path = path

    async def list(self) -> list[DroppedFile]:
        if not self.path.is_dir():
            raise ConfigError(f"drop folder {self.path} does not exist or is not a folder")
        found = []
        for entry in self.path.iterdir():
            if is_candidate(entry.name) and entry.is_file():
                st = entry.stat()
                found.append(DroppedFile(entry.name, st.st_size, st.st_mtime))
        return sorted(found, key=lambda f: f.name)

    async def download(self, name: str, dest: IO[bytes]) -> None:
        with (self.path / name).open("rb") as src:
            shutil.copyfileobj(src, dest, 1 << 20)

    async def finish(self, name: str, outcome: str, report: bytes) -> str:
        target = self.path / outcome
        target.mkdir(exist_ok=True)
        moved = free_name(name, lambda n: (target / n).exists())
        (self.path / name).rename(target / moved)
        (target / report_name(moved)).write_bytes(report)
        return f"{outcome}/{moved}"


@asynccontextmanager
async def open_folder(settings: DropFolderSettings) -> AsyncIterator[Folder]:
    """The folder named by `conversions.drop.location`: a path, sftp:// or ftp://."""
    location = settings.location.strip()
    if not location:
        raise ConfigError("no drop folder: set conversions.drop.location")
    scheme = urlsplit(location).scheme.lower()
    if scheme in ("sftp", "ftp", "ftps"):
        from leadbridge.conversions import remote

        url = urlsplit(location)
        if not url.hostname:
            raise ConfigError(f"conversions.drop.location {location!r} names no host")
        path = unquote(url.path) or "/"
        user = unquote(url.username or "")
        password = unquote(url.password or "") or settings.password
        if scheme == "sftp":
            async with remote.SftpFolder.connect(
                    url.hostname, url.port or 22, path, username=user, password=password,
                    key_file=settings.key_file, known_hosts=settings.known_hosts) as folder:
                yield folder
        else:
            async with remote.FtpFolder.connect(
                    url.hostname, url.port or 21, path, username=user or "anonymous",
                    password=password, tls=scheme == "ftps") as folder:
                yield folder
        return
    if scheme not in ("", "file"):
        raise ConfigError(f"conversions.drop.location {location!r}: use a folder path, "
                          "sftp://, ftp:// or ftps://")
    yield LocalFolder(Path(unquote(urlsplit(location).path) if scheme == "file" else location))


@dataclass(frozen=True, slots=True)
class Processed:
    name: str
    moved_to: str
    report: ImportReport


async def poll_once(
    engine: Engine, settings: Settings, folder: Folder, *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> list[Processed]:
    """One pass over the folder: import every settled CSV, then move it with its report."""
    drop = settings.conversions.drop
    first = {f.name: f for f in await folder.list()}
    if not first:
        return []
    if drop.settle_seconds > 0:
        await sleep(drop.settle_seconds)
        ready = [f for f in await folder.list() if first.get(f.name) == f]
    else:
        ready = list(first.values())
    done: list[Processed] = []
    for dropped in ready:
        with tempfile.TemporaryFile() as local:
            await folder.download(dropped.name, local)
            local.seek(0)
            report = await asyncio.to_thread(
                import_csv, engine, local, name=dropped.name, settings=settings.conversions,
                source="dropfolder", keep_rejections=_KEEP_REJECTIONS)
        outcome = DONE if report.status == "done" else FAILED
        body = json.dumps(report.to_dict(), indent=2).encode()
        moved = await folder.finish(dropped.name, outcome, body)
        log.info("drop folder: %s imported (%d accepted, %d merged, %d rejected) -> %s",
                 dropped.name, report.accepted, report.merged, report.rejected, moved)
        done.append(Processed(dropped.name, moved, report))
    return done


async def poll_locked(engine: Engine, settings: Settings) -> list[Processed] | None:
    """One pass if no other process is polling (None if one is)."""
    lock = connection_lock(engine, DROP_FOLDER_LOCK)
    got = await asyncio.to_thread(lock.__enter__)
    try:
        if not got:
            return None
        async with open_folder(settings.conversions.drop) as folder:
            return await poll_once(engine, settings, folder)
    finally:
        await asyncio.to_thread(lock.__exit__, None, None, None)


async def run_poller(engine: Engine, settings: Settings) -> None:
    """Poll every `conversions.drop.poll_seconds` until cancelled (run by `leadbridge serve`)."""
    every = settings.conversions.drop.poll_seconds
    while True:
        try:
            await poll_locked(engine, settings)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("drop folder %s: the pass failed; it is tried again in %.0f s",
                          safe_location(settings.conversions.drop.location), every)
        await asyncio.sleep(every)
