"""The intake's writer process: batches are stored beside the event loop, not on it.

Writing a batch (browser and organisation ids, identification, totals, the INSERT, the commit
and the fsync) costs nearly as much CPU as receiving and preparing its hits. In one process
both share the event loop's core. With `tracking.writer = "process"` the group commit
hands each batch over a pipe to a writer process, which stores it with the same `BatchWriter`,
commits, makes it durable and answers hit by hit. A request is answered only after that
answer, so an acknowledged hit is on disk exactly as with the writer on the event loop.

Batches are pipelined: the event loop sends a burst in pieces as it reads it (see
`groupcommit.PROCESS_CHUNK`) and keeps preparing the next while the writer stores earlier ones;
the writer takes whatever has arrived since its last commit into one transaction. If the
writer dies, the hits it had not answered fail with 503 (the tracker sends them again) and the
next batch starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import pickle
import queue
import struct
import threading
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from leadbridge.errors import StoreError

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from leadbridge.config import Settings
    from leadbridge.identify.contacts import Identity
    from leadbridge.tracking.batch import PreparedHit

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 16  # batches sent and not yet answered; the next waits for an answer
RESTART_AFTER = 1.0  # seconds between two starts of the writer
_STOP = b"stop"


class WriterGone(StoreError):
    """The writer process is not there (crashed, or could not start)."""


class WriterProcess:
    """The event loop's side: sends batches, settles their futures from the answers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._process: BaseProcess | None = None
        self._requests: Connection | None = None  # to the writer
        self._answers: Connection | None = None  # from the writer
        self._pipe: _PipeWriter | None = None
        self._sent: dict[int, list[asyncio.Future[None]]] = {}  # batch id -> its hits
        self._next_id = 0
        self._room: asyncio.Event | None = None
        self._started_at = -RESTART_AFTER
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self._process is not None and self._answers is not None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer (on the running event loop)."""
        loop = asyncio.get_running_loop()
        self._room = asyncio.Event()
        self._room.set()
        context = _context()
        child_requests, requests = context.Pipe(duplex=False)
        answers, child_answers = context.Pipe(duplex=False)
        process = context.Process(target=_writer_main, name="leadbridge-writer", daemon=True,
                                  args=(self.settings, child_requests, child_answers))
        process.start()
        child_requests.close()  # only the writer holds these ends: its exit is our EOF
        child_answers.close()
        self._process, self._requests, self._answers = process, requests, answers
        self._started_at = time.monotonic()
        self.starts += 1
        self._pipe = _PipeWriter(requests.fileno(), loop)
        loop.add_reader(answers.fileno(), self._on_answers)

    async def aclose(self) -> None:
        """Wait for every answer, then let the writer finish and exit."""
        while self._sent and self.alive:
            await self._next_answer()
        process = self._process
        if process is None:
            return
        if self._pipe is not None:
            self._pipe.write(_STOP)
            await self._pipe.drained()
        await asyncio.to_thread(process.join, 30)
        if process.is_alive():
            log.error("the writer process did not stop in 30 s; terminating it")
            process.terminate()
            await asyncio.to_thread(process.join, 5)
        self._gone("the writer process stopped")

    # -- batches ---------------------------------------------------------------------------

    @property
    def has_room(self) -> bool:
        """Whether a batch can be sent now (fewer than MAX_IN_FLIGHT unanswered)."""
        return self.alive and len(self._sent) < MAX_IN_FLIGHT

    async def room(self) -> None:
        """Return once a batch can be sent (or the writer is gone: `post` restarts it)."""
        while self.alive and not self.has_room:
            await self._next_answer()

    async def _next_answer(self) -> None:
        """Until the next answer arrives or the writer is gone."""
        assert self._room is not None
        self._room.clear()
        await self._room.wait()

    def post(self, hits: list[PreparedHit], futures: list[asyncio.Future[None]],
             rejections: Counter[tuple[int, str]]) -> None:
        """Send a batch now (starting the writer if it is gone)."""
        if not self.alive:
            if time.monotonic() - self._started_at < RESTART_AFTER:
                _fail(futures, WriterGone("the hub's writer is restarting; send it again "
                                          "shortly"))
                return
            log.warning("starting the writer process again")
            self.start()
        batch_id = self._next_id
        self._next_id += 1
        self._sent[batch_id] = futures
        assert self._pipe is not None
        self._pipe.write(pickle.dumps((batch_id, _pack(hits), dict(rejections)),
                                      protocol=pickle.HIGHEST_PROTOCOL))

    def _on_answers(self) -> None:
        answers = self._answers
        assert answers is not None
        try:
            while answers.poll():
                batch_id, _, errors = pickle.loads(answers.recv_bytes())
                futures = self._sent.pop(batch_id)
                if errors is None:
                    for fut in futures:
                        if not fut.done():
                            fut.set_result(None)
                else:
                    for fut, error in zip(futures, errors, strict=True):
                        if fut.done():
                            continue
                        if error is None:
                            fut.set_result(None)
                        else:
                            fut.set_exception(StoreError(error))
        except (EOFError, OSError):
            self._gone("the writer process exited")
        if self._room is not None:
            self._room.set()

    def _gone(self, why: str) -> None:
        """The writer is gone: fail what it had not answered, close our ends."""
        if self._answers is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._answers.fileno())
            self._answers.close()
            self._answers = None
        if self._sent:
            log.error("%s with %d batches unanswered; their hits were not acknowledged", why,
                      len(self._sent))
        for futures in self._sent.values():
            _fail(futures, WriterGone("the hub's writer stopped before this hit was "
                                           "stored; send it again"))
        self._sent.clear()
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
        if self._requests is not None:
            self._requests.close()
            self._requests = None
        if self._process is not None and not self._process.is_alive():
            self._process.join(0)
        self._process = None
        if self._room is not None:
            self._room.set()


def _context() -> multiprocessing.context.ForkServerContext:
    """Writers are forked from a server process that has imported what they need: starting
    one takes milliseconds, and nothing of the event loop's process (threads, sockets) is
    copied into it."""
    context = multiprocessing.get_context("forkserver")
    assert isinstance(context, multiprocessing.context.ForkServerContext)
    context.set_forkserver_preload(["leadbridge.tracking.writerprocess",
                                    "leadbridge.tracking.batch", "leadbridge.jobs",
                                    "leadbridge.store"])
    return context


def _fail(futures: list[asyncio.Future[None]], exc: StoreError) -> None:
    for fut in futures:
        if not fut.done():
            fut.set_exception(exc)


class _PipeWriter:
    """Length-prefixed messages (as `Connection.recv_bytes` reads them) written to a pipe
    without blocking the event loop: what the pipe cannot take now waits in a buffer."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        os.set_blocking(fd, False)
        self.fd, self.loop = fd, loop
        self.buffer = bytearray()
        self._drained: asyncio.Event | None = None
        self.closed = False

    def write(self, payload: bytes) -> None:
        if self.closed:
            return
        data = struct.pack("!i", len(payload)) + payload
        if self.buffer:
            self.buffer += data
            return
        try:
            sent = os.write(self.fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:  # the writer is gone; the answer side tells the loop
            self.close()
            return
        if sent < len(data):
            self.buffer += data[sent:]
            self.loop.add_writer(self.fd, self._flush)

    def _flush(self) -> None:
        try:
            sent = os.write(self.fd, self.buffer)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        del self.buffer[:sent]
        if not self.buffer:
            self.loop.remove_writer(self.fd)
            if self._drained is not None:
                self._drained.set()

    async def drained(self) -> None:
        if self.buffer and not self.closed:
            self._drained = asyncio.Event()
            await self._drained.wait()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.buffer:
                self.loop.remove_writer(self.fd)
                self.buffer.clear()
            if self._drained is not None:
                self._drained.set()


_Packed = tuple[int, str, dict[str, Any], tuple[Any, ...] | None, "Identity | None", bool]


def _pack(hits: list[PreparedHit]) -> list[_Packed]:
    """Hits as plain tuples, which pickle about twice as fast as the dataclasses."""
    out: list[_Packed] = []
    for hit in hits:
        org = hit.org
        out.append((hit.site_id, hit.visitor_key, hit.row,
                    None if org is None else (org.key, org.name, org.domain, org.type,
                                              org.confidence, org.source, org.asn),
                    hit.identity, hit.is_ping))
    return out


def _unpack(packed: list[_Packed]) -> list[PreparedHit]:
    from leadbridge.identify.resolvers import OrgMatch
    from leadbridge.tracking.batch import PreparedHit

    return [PreparedHit(site_id, key, row, None if org is None else OrgMatch(*org), identity,
                        is_ping)
            for site_id, key, row, org, identity, is_ping in packed]


# -- the writer process ----------------------------------------------------------------------

def _writer_main(settings: Settings, requests: Connection, answers: Connection) -> None:
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s (writer): %(message)s")
    try:
        writer = _Writer(settings)
    except Exception:
        log.exception("the writer process could not start")
        return
    try:
        writer.serve(requests, answers)
    finally:
        writer.close()


class _Writer:
    """Stores batches with the group commit's own synchronous path, on its own connection."""

    def __init__(self, settings: Settings) -> None:
        from leadbridge.jobs import open_jobs
        from leadbridge.jobs.triggers import push_soon
        from leadbridge.scoring.ruleset import load_decay
        from leadbridge.store import make_engine
        from leadbridge.tracking.batch import BatchWriter
        from leadbridge.tracking.groupcommit import GroupCommit

        self.engine = make_engine(settings.database_url,
                                  synchronous=settings.tracking.sqlite_synchronous)
        with self.engine.connect() as conn:
            decay = load_decay(conn, settings.scoring)
        self.commit = GroupCommit(self.engine, BatchWriter(decay),
                                  durable=settings.tracking.sqlite_synchronous == "FULL")
        push_soon(self.commit.writer, open_jobs(self.engine, settings), settings)
        self.commit.start_checkpoints()

    def close(self) -> None:
        self.commit.close()
        self.engine.dispose()

    def serve(self, requests: Connection, answers: Connection) -> None:
        """Answer batches until told to stop or the event loop's side goes away.

        Each transaction takes every batch that has arrived, and commits at once: a request
        waits for no more than the hits ahead of it. With SQLite, a thread makes commits
        durable and sends their answers while this one writes the next: one fsync covers
        every commit made before it started.
        """
        synced: queue.SimpleQueue[list[bytes] | None] = queue.SimpleQueue()
        syncer = None
        if self.commit.syncs:
            syncer = threading.Thread(target=self._sync_and_answer, args=(synced, answers),
                                      name="wal-fsync", daemon=True)
            syncer.start()
        inbox = _Inbox(requests)
        try:
            while not inbox.stopped:
                batches = inbox.take()
                if not batches:
                    continue
                out = self.store(batches)
                if syncer is not None:
                    synced.put(out)
                else:
                    for message in out:
                        answers.send_bytes(message)
        finally:
            if syncer is not None:
                synced.put(None)
                syncer.join()

    def _sync_and_answer(self, synced: queue.SimpleQueue[list[bytes] | None],
                         answers: Connection) -> None:
        while True:
            pending = [synced.get()]
            while not synced.empty():
                pending.append(synced.get())
            done = [message for out in pending if out is not None for message in out]
            if done:
                failure = self.commit.sync_now()
                for message in done:
                    if failure is not None:
                        batch_id, count, _ = pickle.loads(message)
                        message = pickle.dumps((batch_id, count, [str(failure)] * count))
                    answers.send_bytes(message)
            if None in pending:
                return

    def store(self, batches: list[_Batch]) -> list[bytes]:
        """Write `batches` in one transaction (each hit on its own if it fails); their
        answers: None for a batch stored whole, else each hit's error or None."""
        for _, _, rejections in batches:
            self.commit.writer.rejections.update(rejections)
        results = self.commit.write_each_now([hit for _, batch, _ in batches for hit in batch])
        out = []
        start = 0
        for batch_id, batch, _ in batches:
            mine = results[start : start + len(batch)]
            start += len(batch)
            errors = None if not any(mine) else [None if e is None else str(e) for e in mine]
            out.append(pickle.dumps((batch_id, len(batch), errors),
                                    protocol=pickle.HIGHEST_PROTOCOL))
        return out


_Batch = tuple[int, list["PreparedHit"], dict[tuple[int, str], int]]


class _Inbox:
    """The batches that have arrived from the event loop, and whether it said stop."""

    def __init__(self, requests: Connection) -> None:
        self.requests = requests
        self.stopped = False

    def take(self) -> list[_Batch]:
        """Wait for a batch, then take every other one that has arrived."""
        batches: list[_Batch] = []
        wait = True
        try:
            while not self.stopped and (wait or self.requests.poll()):
                wait = False
                message = self.requests.recv_bytes()
                if message == _STOP:
                    self.stopped = True
                else:
                    batch_id, packed, rejections = pickle.loads(message)
                    batches.append((batch_id, _unpack(packed), rejections))
        except (EOFError, OSError):  # the event loop's side is gone
            self.stopped = True
        return batches
