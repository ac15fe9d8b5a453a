"""Conversion files: streamed, validated, matched and stored in batches, with a report.

A file is read once to check it is UTF-8 (and take its SHA-256), then streamed row by row;
each batch (`conversions.batch_size` rows) is one transaction, so memory stays flat however
large the file, and a file interrupted half way can simply be imported again (the rows already
stored come back as merged duplicates).

The report's counts always add up: rows_read = accepted + merged + rejected. Every rejected
row is kept with its line number, reason and raw text (`conversion_rejections`). A file that
is not UTF-8, or whose header names no usable columns, is refused whole (status "failed")
before any row is read. A dry run does every check and writes nothing, not even the report.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import DBAPIError

from leadbridge.config import ConversionsSettings
from leadbridge.conversions.attribution import attribute_batch
from leadbridge.conversions.fields import ConversionRow, RowParser, RowRejected
from leadbridge.conversions.intake import (
    ACCEPTED,
    MERGED,
    AttributeBatch,
    ConversionWriter,
    DedupeRule,
    Source,
)
from leadbridge.errors import InputError, NotFound
from leadbridge.gctune import relaxed_gc
from leadbridge.identify.csvfile import CsvTable, check_utf8, read_table
from leadbridge.store.bulk import BulkInsert
from leadbridge.store.db import lost_a_race
from leadbridge.store.tables import conversion_imports, conversion_rejections

__all__ = [
    "ImportReport",
    "Rejection",
    "get_import",
    "import_csv",
    "import_path",
    "rule_from_settings",
]

RAW_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Rejection:
    row_number: int  # the line in the file (the header is line 1)
    reason: str
    raw: str
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row_number, "reason": self.reason, "raw": self.raw,
                "truncated": self.truncated}


@dataclass
class ImportReport:
    """What happened to every row of one file."""

    source: str
    filename: str | None
    dry_run: bool = False
    sha256: str | None = None
    import_id: int | None = None
    status: str = "running"  # running, done, failed
    message: str | None = None
    rows_read: int = 0
    accepted: int = 0
    merged: int = 0
    rejected: int = 0
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    rejections: list[Rejection] = field(default_factory=list)  # the first ones, for people
    reasons: Counter[str] = field(default_factory=Counter)  # rejections by kind
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def adds_up(self) -> bool:
        return self.rows_read == self.accepted + self.merged + self.rejected

    def to_dict(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id, "source": self.source, "filename": self.filename,
            "sha256": self.sha256, "dry_run": self.dry_run, "status": self.status,
            "message": self.message, "rows_read": self.rows_read, "accepted": self.accepted,
            "merged": self.merged, "rejected": self.rejected,
            "rejected_by_reason": dict(self.reasons.most_common()),
            "ignored_columns": self.ignored_columns,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "rejections": [r.to_dict() for r in self.rejections],
        }


def rule_from_settings(settings: ConversionsSettings) -> DedupeRule:
    return DedupeRule(settings.dedupe, timedelta(minutes=settings.dedupe_window_minutes))


def _rejection(line: int, reason: str, raw: str) -> Rejection:
    return Rejection(line, reason, raw[:RAW_LIMIT], len(raw) > RAW_LIMIT)


def _kind(reason: str) -> str:
    return reason.split(":", 1)[0]


class _Batch:
    """Rows waiting for one transaction: the valid ones and the rejected ones, in order."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, list[str], ConversionRow]] = []
        self.rejections: list[Rejection] = []

    def __len__(self) -> int:
        return len(self.rows) + len(self.rejections)


class _Import:
    def __init__(self, engine: Engine, settings: ConversionsSettings, report: ImportReport,
                 attribute: AttributeBatch | None, keep: int) -> None:
        self.engine = engine
        self.settings = settings
        self.report = report
        self.attribute = attribute
        self.keep = keep
        self.table: CsvTable | None = None

    def reject(self, batch: _Batch, line: int, reason: str, raw: str) -> None:
        batch.rejections.append(_rejection(line, reason, raw))

    def run(self, stream: IO[bytes]) -> None:
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        try:
            with relaxed_gc():
                self._run(text)
        finally:
            text.detach()

    def _run(self, text: io.TextIOWrapper) -> None:
        report, settings = self.report, self.settings
        batch = _Batch()

        def malformed(line: int, error: str) -> None:
            report.rows_read += 1
            self.reject(batch, line, f"malformed row: {error}", "")

        table = self.table = read_table(text, on_error=malformed)
        try:
            parser = RowParser(table.header)
        except ValueError as exc:
            raise InputError(f"{report.filename}: {exc}") from None
        report.ignored_columns = parser.unknown
        with self.engine.connect() as conn:
            if not report.dry_run:
                with conn.begin():
                    report.import_id = conn.execute(insert(conversion_imports).values(
                        source=report.source, filename=report.filename, sha256=report.sha256,
                        started_at=report.started_at, status="running",
                        rows_read=0, accepted=0, merged=0, rejected=0,
                    ).returning(conversion_imports.c.id)).scalar_one()
            writer = self._writer(conn)
            try:
                size = settings.batch_size
                parse = parser.parse_cells
                for line, cells in table.rows:
                    report.rows_read += 1
                    try:
                        batch.rows.append((line, cells, parse(cells)))
                    except RowRejected as exc:
                        self.reject(batch, line, exc.reason, table.line(cells))
                    if len(batch) >= size:
                        self._flush(conn, writer, batch)
                        batch = _Batch()
                self._flush(conn, writer, batch)
            finally:
                if writer.dry_run:
                    with conn.begin():
                        writer.close()

    def _writer(self, conn: Connection) -> ConversionWriter:
        report = self.report
        source: Source = "dropfolder" if report.source == "dropfolder" else "csv"
        if report.dry_run:
            with conn.begin():
                return ConversionWriter(conn, rule=rule_from_settings(self.settings),
                                        source=source, dry_run=True)
        return ConversionWriter(conn, rule=rule_from_settings(self.settings), source=source,
                                import_id=report.import_id, attribute=self.attribute)

    def _flush(self, conn: Connection, writer: ConversionWriter, batch: _Batch) -> None:
        if not len(batch):
            return
        for attempt in (1, 2):
            try:
                with conn.begin():
                    self._write(conn, writer, batch)
                return
            except DBAPIError as exc:
                # another import stored one of these conversions in the meantime (the
                # second pass sees it and counts it as merged), or deadlocked with this one
                if attempt == 2 or not lost_a_race(exc):
                    raise

    def _write(self, conn: Connection, writer: ConversionWriter, batch: _Batch) -> None:
        report = self.report
        assert self.table is not None
        outcomes = writer.write([row for _, _, row in batch.rows])
        rejections = list(batch.rejections)
        counts: Counter[str] = Counter()
        for (line, cells, _), outcome in zip(batch.rows, outcomes, strict=True):
            counts[outcome.status] += 1
            if outcome.status not in (ACCEPTED, MERGED):
                rejections.append(_rejection(line, outcome.reason or "rejected",
                                             self.table.line(cells)))
        rejections.sort(key=lambda r: r.row_number)
        if not report.dry_run:
            BulkInsert(conversion_rejections, conn.dialect.name).execute(conn, [
                {"import_id": report.import_id, "row_number": r.row_number, "reason": r.reason,
                 "raw": r.raw, "truncated": r.truncated} for r in rejections])
        # counted only once the transaction is sure to commit (a retried batch counts once)
        report.accepted += counts[ACCEPTED]
        report.merged += counts[MERGED]
        report.rejected += len(rejections)
        for r in rejections:
            report.reasons[_kind(r.reason)] += 1
            if len(report.rejections) < self.keep:
                report.rejections.append(r)
        if not report.dry_run:
            _save_counts(conn, report)


def _save_counts(conn: Connection, report: ImportReport) -> None:
    conn.execute(update(conversion_imports).where(conversion_imports.c.id == report.import_id)
                 .values(rows_read=report.accepted + report.merged + report.rejected,
                         accepted=report.accepted, merged=report.merged,
                         rejected=report.rejected, status=report.status,
                         finished_at=report.finished_at, message=report.message))


def import_csv(
    engine: Engine,
    stream: IO[bytes],
    *,
    name: str,
    settings: ConversionsSettings,
    source: str = "cli",
    dry_run: bool = False,
    keep_rejections: int = 20,
    attribute: AttributeBatch | None = attribute_batch,
) -> ImportReport:
    """Import a CSV of conversions from a seekable binary stream; never raises for bad rows.

    `source` says how the file came (cli, api, dropfolder); its conversions are stored with
    source "csv" ("dropfolder" for the drop folder).

    A file refused whole (not UTF-8, a header without the needed columns) comes back with
    status "failed" and a message; a database error propagates after the import is marked
    failed.
    """
    report = ImportReport(source=source, filename=name, dry_run=dry_run)
    job = _Import(engine, settings, report, attribute, keep_rejections)
    try:
        report.sha256 = check_utf8(stream, name)
        stream.seek(0)
        job.run(stream)
        report.status = "done"
    except InputError as exc:
        report.status, report.message = "failed", str(exc)
    except Exception as exc:
        report.status, report.message = "failed", f"stopped by an error: {exc}"[:2000]
        _finish(engine, report)
        raise
    _finish(engine, report)
    return report


def _finish(engine: Engine, report: ImportReport) -> None:
    report.finished_at = datetime.now(UTC)
    if report.dry_run:
        return
    with engine.begin() as conn:
        if report.import_id is None:
            report.import_id = conn.execute(insert(conversion_imports).values(
                source=report.source, filename=report.filename, sha256=report.sha256,
                started_at=report.started_at, status=report.status,
                rows_read=0, accepted=0, merged=0, rejected=0,
            ).returning(conversion_imports.c.id)).scalar_one()
        _save_counts(conn, report)


def import_path(engine: Engine, path: Path, *, settings: ConversionsSettings,
                source: str = "cli", dry_run: bool = False, keep_rejections: int = 20,
                attribute: AttributeBatch | None = attribute_batch) -> ImportReport:
    """`import_csv` on a file; InputError when it cannot be opened."""
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a CSV file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    with stream:
        return import_csv(engine, stream, name=path.name, settings=settings, source=source,
                          dry_run=dry_run, keep_rejections=keep_rejections, attribute=attribute)


@dataclass(frozen=True, slots=True)
class ImportRecord:
    id: int
    source: str
    filename: str | None
    sha256: str | None
    status: str
    message: str | None
    rows_read: int
    accepted: int
    merged: int
    rejected: int
    started_at: datetime
    finished_at: datetime | None


def get_import(conn: Connection, import_id: int, *, limit: int = 100,
               offset: int = 0) -> tuple[ImportRecord, list[Rejection]]:
    """An import and a page of its rejected rows, in file order."""
    row = conn.execute(select(conversion_imports)
                       .where(conversion_imports.c.id == import_id)).first()
    if row is None:
        raise NotFound(f"conversion import {import_id} does not exist")
    record = ImportRecord(row.id, row.source, row.filename, row.sha256, row.status, row.message,
                          row.rows_read, row.accepted, row.merged, row.rejected,
                          row.started_at, row.finished_at)
    rejections = [
        Rejection(r.row_number, r.reason, r.raw, r.truncated)
        for r in conn.execute(select(conversion_rejections)
                              .where(conversion_rejections.c.import_id == import_id)
                              .order_by(conversion_rejections.c.row_number)
                              .limit(limit).offset(offset))
    ]
    return record, rejections

