"""Group commit: requests wait for the commit of the batch that holds their hit.

A flusher task on the event loop takes everything queued since the last commit, writes it in
one transaction and wakes every waiting request at once. An acknowledged hit is on disk;
durability costs a few milliseconds of latency, not throughput.

The statements run on the event loop's own thread and only BEGIN and COMMIT (which wait for
locks and for the disk) go to a worker thread. A separate writer thread would spend most of
its time waiting to get the GIL back from the busy event loop after each database call.

If a batch fails, its hits are retried one by one so a single bad row cannot take its
neighbours down with it.

With a writer process (`tracking.writer = "process"`, see `writerprocess`), the flusher sends
each batch to that process instead of writing it here, and the same futures wait for its answer.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine

from leadbridge.errors import StoreError
from leadbridge.store.db import sqlite_file
from leadbridge.store.durability import Checkpointer, WalSync
from leadbridge.tracking.batch import BatchWriter, PreparedHit
from leadbridge.tracking.writerprocess import WriterProcess

if TYPE_CHECKING:
    from leadbridge.config import Settings

log = logging.getLogger(__name__)

# a worker thread finishing a COMMIT waits this long at most for the busy loop's GIL
SWITCH_INTERVAL = 0.001
IDLE_FLUSH_SECONDS = 1.0
# with a writer process, a burst is sent in pieces of this many hits as it is read
PROCESS_CHUNK = 16


class GroupCommit:
    def __init__(self, engine: Engine, writer: BatchWriter, max_batch: int = 5000,
                 *, durable: bool = True, process: Settings | None = None) -> None:
        """`process`: the settings a writer process opens the database with (a database
        file or server, not SQLite in memory); None writes on the event loop."""
        self.engine = engine
        self._process = WriterProcess(process) if process is not None else None
        # SQLite with durability: commit without fsync, then one shared fsync of the WAL
        self._wal: WalSync | None = None
        self._checkpointer: Checkpointer | None = None
        database = sqlite_file(engine)
        if self._process is None and durable and database is not None:
            self._wal = WalSync(database)
            self._checkpointer = Checkpointer(database)
        self.writer = writer
        self.max_batch = max_batch
        self._queue: list[tuple[PreparedHit, asyncio.Future[None]]] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._conn: Connection | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.written = 0

    # -- life cycle (on the event loop) --------------------------------------------------

    def start(self) -> None:
        """Start the flusher task on the running event loop."""
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        self._stopping = False
        self._wakeup = asyncio.Event()
        if self._process is not None:
            self._process.start()
        self.start_checkpoints()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    def start_checkpoints(self) -> None:
        """Hand SQLite's checkpoints to the checkpointer thread (when there is one)."""
        if self._checkpointer is not None:
            self._checkpointer.start()
            if self._conn is not None:  # reopened with SQLite's own checkpoints off
                self._conn.close()
                self._conn = None

    async def aclose(self) -> None:
        """Write what is queued, flush the counters, then stop."""
        self._stopping = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._pending:
            await asyncio.gather(*self._pending)
        if self._process is not None:
            await self._process.aclose()
        self.close()

    def close(self) -> None:
        """Flush the rejection counters and close the connection (no flusher running)."""
        if self._task is not None and not self._task.done():
            raise RuntimeError("close() while the flusher runs; use aclose()")
        self._flush_rejections()
        if self._checkpointer is not None:
            self._checkpointer.stop()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._wal is not None:
            self._wal.close()

    def submit(self, hit: PreparedHit) -> asyncio.Future[None]:
        """Queue a hit; the future resolves when the batch holding it is committed."""
        if self._stopping or self._task is None:
            raise StoreError("the hub is not accepting hits right now; send it again shortly")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((hit, fut))
        if len(self._queue) == 1 and self._wakeup is not None:
            self._wakeup.set()
        elif (len(self._queue) >= PROCESS_CHUNK and self._process is not None
              and self._process.has_room):
            # the writer starts on these while this loop still reads the rest of the burst
            taken, self._queue = self._queue, []
            self._post(taken)
        return fut

    def count_rejection(self, site_id: int, reason: str) -> None:
        self.writer.rejections[(site_id, reason)] += 1

    def write_now(self, batch: list[PreparedHit]) -> None:
        """Write a batch synchronously (tools, tests and the writer process: where no
        flusher runs)."""
        if self._task is not None and not self._task.done():
            raise RuntimeError("write_now is for when the flusher is not running")
        conn = self._connection()
        try:
            trans = conn.begin()
            self.writer.refresh_if_changed(conn, time.monotonic())
            self.writer.write(conn, batch, datetime.now(UTC))
            trans.commit()
        except Exception:
            self._discard(conn)
            raise
        self.batches += 1
        self.written += len(batch)

    def write_each_now(self, batch: list[PreparedHit]) -> list[StoreError | None]:
        """`write_now`, then each hit on its own if the batch fails: what became of each."""
        try:
            self.write_now(batch)
            return [None] * len(batch)
        except Exception:
            log.exception(_RETRYING, len(batch))
        results: list[StoreError | None] = []
        for hit in batch:
            try:
                self.write_now([hit])
                results.append(None)
            except Exception as exc:
                results.append(_not_stored(hit, exc))
        return results

    @property
    def syncs(self) -> bool:
        """Whether commits become durable only with `sync_now` (SQLite's shared fsync)."""
        return self._wal is not None

    def sync_now(self) -> StoreError | None:
        """Make every commit made so far durable; the error of the hits it covers, if any."""
        if self._wal is None:
            return None
        try:
            self._wal.fsync()
        except OSError as exc:
            return _unconfirmed(exc)
        return None

    # -- the flusher ---------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._stopping:
                    return
                # a plain timer, not wait_for: this runs for nearly every batch
                self._wakeup.clear()
                timer = loop.call_later(IDLE_FLUSH_SECONDS, self._wakeup.set)
                await self._wakeup.wait()
                timer.cancel()
                if not self._queue and not self._stopping:  # a quiet second
                    if self._process is None:
                        self._flush_rejections()
                    elif self.writer.rejections:
                        await self._send([])
                continue
            if self._process is None:
                await asyncio.sleep(0)  # let requests that are ready now join this batch
            taken = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            if self._process is not None:
                await self._send(taken)
                continue
            results = await self._write_batch([hit for hit, _ in taken])
            if self._wal is None:
                _settle(taken, results)
            else:  # the next batch is written while this one's fsync runs
                task = asyncio.get_running_loop().create_task(self._settle_durable(taken, results))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)

    async def _send(self, taken: list[tuple[PreparedHit, asyncio.Future[None]]]) -> None:
        """`_post` once fewer than MAX_IN_FLIGHT batches await the writer's answer."""
        assert self._process is not None
        await self._process.room()
        self._post(taken)

    def _post(self, taken: list[tuple[PreparedHit, asyncio.Future[None]]]) -> None:
        assert self._process is not None
        self._process.post([hit for hit, _ in taken], [fut for _, fut in taken],
                           self.writer.rejections)
        self.writer.rejections.clear()
        self.batches += 1
        self.written += len(taken)

    async def _settle_durable(self, taken: list[tuple[PreparedHit, asyncio.Future[None]]],
                              results: list[BaseException | None]) -> None:
        assert self._wal is not None
        try:
            await self._wal.sync()
        except OSError as exc:
            failure = _unconfirmed(exc)
            results = [err or failure for err in results]
        _settle(taken, results)

    async def _write_batch(self, batch: list[PreparedHit]) -> list[BaseException | None]:
        try:
            await self._write(batch)
            return [None] * len(batch)
        except Exception:
            log.exception(_RETRYING, len(batch))
        results: list[BaseException | None] = []
        for hit in batch:
            try:
                await self._write([hit])
                results.append(None)
            except Exception as exc:
                results.append(_not_stored(hit, exc))
        return results

    async def _write(self, batch: list[PreparedHit]) -> None:
        conn = self._connection()
        try:
            trans = await asyncio.to_thread(conn.begin)  # may wait for another writer's lock
            self.writer.refresh_if_changed(conn, time.monotonic())
            self.writer.write(conn, batch, datetime.now(UTC))
            if self._wal is not None:
                trans.commit()  # no fsync here: the caller waits for the shared one
            else:
                await asyncio.to_thread(trans.commit)  # waits for the disk, not for the loop
        except Exception:
            self._discard(conn)
            raise
        self.batches += 1
        self.written += len(batch)

    def _connection(self) -> Connection:
        """The writer's own connection, kept open between batches (reopened after errors)."""
        if self._conn is None or self._conn.closed:
            self._conn = self.engine.connect().execution_options(writer=True)
            if self._wal is not None:  # outside any transaction, on the driver's connection
                raw = self._conn.connection.dbapi_connection
                assert raw is not None
                raw.execute("PRAGMA synchronous=NORMAL")
                if self._checkpointer is not None and self._checkpointer.running:
                    raw.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's job
        return self._conn

    def _discard(self, conn: Connection) -> None:
        self.writer.forget()  # ids cached during a rolled-back batch may not exist
        conn.close()

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


_RETRYING = "batch of %d hits failed; retrying them one by one"


def _not_stored(hit: PreparedHit, exc: Exception) -> StoreError:
    log.error("hit for site %s not stored: %s", hit.site_id, exc)
    return StoreError(f"the hit could not be stored: {type(exc).__name__}")


def _unconfirmed(exc: OSError) -> StoreError:
    log.error("fsync of the write-ahead log failed: %s", exc)
    return StoreError("the hit was written but not confirmed on disk; send it again")


def _settle(taken: list[tuple[PreparedHit, asyncio.Future[None]]],
            results: list[BaseException | None]) -> None:
    for (_, fut), err in zip(taken, results, strict=True):
        if fut.done():
            continue
        if err is None:
            fut.set_result(None)
        else:
            fut.set_exception(err)
