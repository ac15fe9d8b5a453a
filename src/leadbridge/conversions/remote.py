"""Drop folders on a server: SFTP (asyncssh) and FTP/FTPS (the standard library's ftplib).

The hub connects out; the customer's network needs no inbound port. SFTP checks the server's
host key against `known_hosts` (the setting, or the user's ~/.ssh/known_hosts): an unknown
server is refused, never trusted on first use.
"""

from __future__ import annotations

import asyncio
import ftplib
import io
import posixpath
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import asyncssh

from leadbridge.conversions.dropfolder import DroppedFile, free_name, is_candidate, report_name
from leadbridge.errors import ConfigError

__all__ = ["FtpFolder", "SftpFolder"]

_CHUNK = 1 << 20


class SftpFolder:
    def __init__(self, sftp: asyncssh.SFTPClient, path: str) -> None:
        self.sftp = sftp
        self.path = path

    @classmethod
    @asynccontextmanager
    async def connect(cls, host: str, port: int, path: str, *, username: str, password: str,
                      key_file: Path | None, known_hosts: Path | None
                      ) -> AsyncIterator[SftpFolder]:
        options: dict[str, Any] = {"username": username or None}
        if key_file is not None:
            options["client_keys"] = [str(key_file)]
        if password:
            options["password"] = password
        if known_hosts is not None:
            options["known_hosts"] = str(known_hosts)
        try:
            conn = await asyncssh.connect(host, port, **options)
        except (OSError, asyncssh.Error) as exc:
            raise ConfigError(f"drop folder sftp://{host}:{port}: cannot connect: "
                              f"{exc}") from None
        try:
            async with conn.start_sftp_client() as sftp:
                if not await sftp.isdir(path):
                    raise ConfigError(f"drop folder sftp://{host}:{port}{path} does not exist "
                                      "or is not a folder")
                yield cls(sftp, path)
        finally:
            conn.close()
            with suppress(Exception):
                await conn.wait_closed()

    async def list(self) -> list[DroppedFile]:
        found = []
        for entry in await self.sftp.readdir(self.path):
            name = str(entry.filename)
            attrs = entry.attrs
            if not is_candidate(name) or attrs.permissions is None:
                continue
            if not stat.S_ISREG(attrs.permissions):
                continue
            found.append(DroppedFile(name, attrs.size or 0, float(attrs.mtime or 0)))
        return sorted(found, key=lambda f: f.name)

    async def download(self, name: str, dest: IO[bytes]) -> None:
        async with self.sftp.open(posixpath.join(self.path, name), "rb") as src:
            while chunk := await src.read(_CHUNK):
                assert isinstance(chunk, bytes)  # opened binary, without an encoding
                dest.write(chunk)

    async def finish(self, name: str, outcome: str, report: bytes) -> str:
        target = posixpath.join(self.path, outcome)
        await self.sftp.makedirs(target, exist_ok=True)
        present = set(await self.sftp.listdir(target))
        moved = free_name(name, present.__contains__)
        await self.sftp.rename(posixpath.join(self.path, name), posixpath.join(target, moved))
        async with self.sftp.open(posixpath.join(target, report_name(moved)), "wb") as out:
            await out.write(report)
        return f"{outcome}/{moved}"


class FtpFolder:
    """FTP through ftplib (blocking, run in a thread). Listing needs MLSD (RFC 3659)."""

    def __init__(self, ftp: ftplib.FTP, path: str) -> None:
        self.ftp = ftp
        self.path = path

    @classmethod
    @asynccontextmanager
    async def connect(cls, host: str, port: int, path: str, *, username: str, password: str,
                      tls: bool) -> AsyncIterator[FtpFolder]:
        def login() -> ftplib.FTP:
            ftp = ftplib.FTP_TLS() if tls else ftplib.FTP()
            ftp.connect(host, port, timeout=30)
            ftp.login(username, password)
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
            return ftp

        try:
            ftp = await asyncio.to_thread(login)
        except (OSError, ftplib.Error) as exc:
            raise ConfigError(f"drop folder ftp://{host}:{port}: cannot connect: {exc}") from None
        try:
            yield cls(ftp, path)
        finally:
            with suppress(Exception):
                await asyncio.to_thread(ftp.quit)

    async def list(self) -> list[DroppedFile]:
        def listing() -> list[DroppedFile]:
            found = []
            for name, facts in self.ftp.mlsd(self.path, facts=["type", "size", "modify"]):
                if facts.get("type") != "file" or not is_candidate(name):
                    continue
                modify = facts.get("modify", "")
                mtime = (datetime.strptime(modify[:14], "%Y%m%d%H%M%S").timestamp()
                         if len(modify) >= 14 else 0.0)
                found.append(DroppedFile(name, int(facts.get("size", "0") or 0), mtime))
            return sorted(found, key=lambda f: f.name)

        return await asyncio.to_thread(listing)

    async def download(self, name: str, dest: IO[bytes]) -> None:
        await asyncio.to_thread(self.ftp.retrbinary, f"RETR {posixpath.join(self.path, name)}",
                                dest.write, _CHUNK)

    async def finish(self, name: str, outcome: str, report: bytes) -> str:
        def move() -> str:
            target = posixpath.join(self.path, outcome)
            with suppress(ftplib.error_perm):
                self.ftp.mkd(target)
            present = {posixpath.basename(n) for n in self.ftp.nlst(target)}
            moved = free_name(name, present.__contains__)
            self.ftp.rename(posixpath.join(self.path, name), posixpath.join(target, moved))
            self.ftp.storbinary(f"STOR {posixpath.join(target, report_name(moved))}",
                                io.BytesIO(report))
            return f"{outcome}/{moved}"

        return await asyncio.to_thread(move)
