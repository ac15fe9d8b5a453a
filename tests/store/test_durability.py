"""The write-ahead log: checkpoints run beside the writer, not inside its commits."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from leadbridge.scoring.decay import Decay
from leadbridge.store import make_engine, upgrade
from leadbridge.store.durability import Checkpointer
from leadbridge.tracking.batch import BatchWriter
from leadbridge.tracking.groupcommit import GroupCommit
from support import wait_for


def _fill(conn: sqlite3.Connection, rows: int) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS blobs (b BLOB)")
    for _ in range(rows):
        conn.execute("INSERT INTO blobs VALUES (randomblob(4000))")
        conn.commit()


def test_checkpointer_copies_the_log_into_the_database(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    _fill(writer, 300)  # ~1.2 MB, all of it still in the log
    assert path.stat().st_size < 100_000
    checkpointer = Checkpointer(path, interval=0.05)
    checkpointer.start()
    try:
        assert checkpointer.running
        wait_for(lambda: path.stat().st_size > 1_000_000, timeout=10)
        assert checkpointer.checkpoints >= 1
    finally:
        checkpointer.stop()
        writer.close()
    assert not checkpointer.running


def test_the_hub_writer_leaves_checkpoints_to_the_checkpointer(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    upgrade(engine)
    commit = GroupCommit(engine, BatchWriter(Decay(30.0, datetime.now(UTC))))

    async def run() -> tuple[int, bool]:
        commit.start()
        try:
            raw = commit._connection().connection.dbapi_connection
            assert raw is not None
            setting = int(raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
            assert commit._checkpointer is not None
            return setting, commit._checkpointer.running
        finally:
            await commit.aclose()

    setting, running = asyncio.run(run())
    assert setting == 0
    assert running
    assert commit._checkpointer is not None and not commit._checkpointer.running
    engine.dispose()
