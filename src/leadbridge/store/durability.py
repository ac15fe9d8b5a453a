"""Group fsync for SQLite's write-ahead log.

With `synchronous=FULL`, SQLite fsyncs the WAL inside every COMMIT, so no other transaction can
start until the disk answers. The intake instead commits with `synchronous=NORMAL` (the WAL
frames reach the file, not yet the disk) and calls `fsync` on the WAL itself before it
acknowledges the hits: the same guarantee (an acknowledged hit survives a power cut), while the
next batch is already being written. One fsync covers every commit made before it started, so
concurrent waiters share it.

Checkpoints (copying the log's pages back into the database file, then an fsync of that file)
would otherwise run inside whichever commit crosses SQLite's threshold, on the event loop. The
writer turns them off on its connection and a `Checkpointer` thread runs them instead, on its
own connection: SQLite does that work without holding the GIL, beside the writer, never
blocking it (a PASSIVE checkpoint takes no write lock).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class WalSync:
    def __init__(self, database: Path) -> None:
        self.path = Path(f"{database}-wal")
        self._fd: int | None = None
        self._inode: tuple[int, int] | None = None
        self._running: asyncio.Future[None] | None = None
        self._next: asyncio.Future[None] | None = None
        self._driver: asyncio.Task[None] | None = None

    async def sync(self) -> None:
        """Return once every commit made before this call is on disk."""
        loop = asyncio.get_running_loop()
        if self._running is None:
            self._running = loop.create_future()
            self._driver = loop.create_task(self._drive(self._running))
            await asyncio.shield(self._running)
            return
        # an fsync is under way but may have started before our commit: wait for the next
        if self._next is None:
            self._next = loop.create_future()
        await asyncio.shield(self._next)

    async def _drive(self, current: asyncio.Future[None]) -> None:
        while True:
            try:
                await asyncio.to_thread(self.fsync)
            except BaseException as exc:  # waiters learn that durability is not assured
                current.set_exception(exc)
                _drain_others(self._next, exc)
                self._running = self._next = None
                return
            current.set_result(None)
            if self._next is None:
                self._running = None
                return
            current, self._next = self._next, None
            self._running = current

    def fsync(self) -> None:
        """Make every commit made so far durable (blocking)."""
        stat = os.stat(self.path)
        inode = (stat.st_dev, stat.st_ino)
        if self._fd is None or inode != self._inode:
            if self._fd is not None:
                os.close(self._fd)
            self._fd = os.open(self.path, os.O_RDONLY)
            self._inode = inode
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _drain_others(fut: asyncio.Future[None] | None, exc: BaseException) -> None:
    if fut is not None and not fut.done():
        fut.set_exception(exc)


class Checkpointer:
    """A thread that checkpoints the write-ahead log every `interval` seconds (PASSIVE)."""

    def __init__(self, database: Path, interval: float = 0.2) -> None:
        self.database = database
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.checkpoints = 0

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        conn = sqlite3.connect(self.database, timeout=30, check_same_thread=False)
        try:
            while not self._stop.wait(self.interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # busy or locked: the next round catches up
                    log.debug("checkpoint skipped: %s", exc)
        finally:
            conn.close()
