"""Group commit: requests wait for the commit of the batch that holds their hit.

One writer thread drains everything queued since its last commit, writes it in one
transaction and then wakes every waiting request at once. An acknowledged hit is on disk;
durability costs a few milliseconds of latency, not throughput. If a batch fails, its hits are
retried one by one so a single bad row cannot take its neighbours down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine

from leadbridge.errors import StoreError
from leadbridge.tracking.batch import BatchWriter, PreparedHit

log = logging.getLogger(__name__)

_Waiter = tuple[PreparedHit, asyncio.Future[None], asyncio.AbstractEventLoop]


class GroupCommit:
    def __init__(self, engine: Engine, writer: BatchWriter, max_batch: int = 5000) -> None:
        self.engine = engine
        self.writer = writer
        self.max_batch = max_batch
        self._queue: list[_Waiter] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None
        self._rejections: Counter[tuple[int, str]] = Counter()
        self.batches = 0
        self.written = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leadbridge-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then stop the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def submit(self, hit: PreparedHit) -> asyncio.Future[None]:
        """Queue a hit (from the event loop); the future resolves when it is committed."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._cond:
            if self._stopping:
                raise StoreError("the hub is shutting down; send the hit again in a moment")
            self._queue.append((hit, fut, loop))
            if len(self._queue) == 1:
                self._cond.notify()
        return fut

    def count_rejection(self, site_id: int, reason: str) -> None:
        with self._cond:
            self._rejections[(site_id, reason)] += 1

    def write_now(self, batch: list[PreparedHit]) -> None:
        """Write a batch from the calling thread (tools and tests, while the thread is off)."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("write_now is for when the writer thread is not running")
        self._write(batch)

    # -- the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait(timeout=1.0)
                    if not self._queue and self._rejections:
                        break
                if self._stopping and not self._queue:
                    self.writer.rejections.update(self._rejections)
                    self._rejections.clear()
                    self._flush_rejections()
                    if self._conn is not None:
                        self._conn.close()
                        self._conn = None
                    return
                taken = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                self.writer.rejections.update(self._rejections)
                self._rejections.clear()
            if not taken:
                self._flush_rejections()
                continue
            results = self._write_batch(taken)
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None],
                                                            BaseException | None]]] = {}
            for (_, fut, loop), err in zip(taken, results, strict=True):
                by_loop.setdefault(loop, []).append((fut, err))
            for loop, done in by_loop.items():
                # a closed loop means nobody is waiting any more
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_resolve, done)

    def _write_batch(self, taken: list[_Waiter]) -> list[BaseException | None]:
        batch = [w[0] for w in taken]
        try:
            self._write(batch)
            return [None] * len(batch)
        except Exception:
            log.exception("batch of %d hits failed; retrying them one by one", len(batch))
        results: list[BaseException | None] = []
        for hit in batch:
            try:
                self._write([hit])
                results.append(None)
            except Exception as exc:
                log.error("hit for site %s not stored: %s", hit.site_id, exc)
                results.append(StoreError(f"the hit could not be stored: {type(exc).__name__}"))
        return results

    def _connection(self) -> Connection:
        """The writer's own connection, kept open between batches (reopened after errors)."""
        if self._conn is None or self._conn.closed:
            self._conn = self.engine.connect().execution_options(writer=True)
        return self._conn

    def _write(self, batch: list[PreparedHit]) -> None:
        now = datetime.now(UTC)
        conn = self._connection()
        try:
            with conn.begin():
                self.writer.refresh_if_changed(conn, time.monotonic())
                self.writer.write(conn, batch, now)
        except Exception:
            self.writer.forget()  # ids cached during a rolled-back batch may not exist
            conn.close()
            raise
        self.batches += 1
        self.written += len(batch)

    def _flush_rejections(self) -> None:
        if not self.writer.rejections:
            return
        conn = self._connection()
        try:
            with conn.begin():
                self.writer.flush_rejections(conn, datetime.now(UTC))
        except Exception:
            conn.close()
            log.exception("could not store the counts of rejected tracking requests")


def _resolve(done: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    for fut, err in done:
        if fut.done():
            continue
        if err is None:
            fut.set_result(None)
        else:
            fut.set_exception(err)

