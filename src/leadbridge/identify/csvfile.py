"""Reading the customer's CSV files (IP ranges, companies, conversions): UTF-8 with or without
a BOM, comma or semicolon separated (whichever the header line has more of), the first line
naming the columns. Files are streamed, never read whole: memory stays flat as they grow.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO

from leadbridge.errors import InputError

_CHUNK = 1 << 20


@dataclass
class CsvTable:
    """A CSV file being read: its lower-cased header, and (line number, cells) per row."""

    header: list[str]
    rows: Iterator[tuple[int, list[str]]]
    delimiter: str

    def line(self, cells: list[str]) -> str:
        """A row written back as CSV in the file's own delimiter (for reports)."""
        out = io.StringIO()
        csv.writer(out, delimiter=self.delimiter, lineterminator="").writerow(cells)
        return out.getvalue()


def check_utf8(stream: IO[bytes], name: str) -> str:
    """Read a whole binary stream once: its SHA-256, or InputError if it is not UTF-8.

    The error names the line and byte, so the sender can find the character; a file in
    another encoding (Latin-1, Windows-1252, UTF-16) is refused whole rather than imported
    with garbled or missing rows.
    """
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    lines = 1
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            at = offset + exc.start - pending
            lines += chunk.count(b"\n", 0, max(exc.start - pending, 0))
            raise InputError(f"{name}: not UTF-8 text (line {lines}, byte {at}); "
                             "save it as UTF-8 (with or without BOM)") from None
        offset += len(chunk)
        lines += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise InputError(f"{name}: not UTF-8 text (it ends inside a character); save it as "
                         "UTF-8") from None
    return digest.hexdigest()


def read_table(stream: TextIO,
               on_error: Callable[[int, str], None] | None = None) -> CsvTable:
    """Stream a text CSV (opened with newline=""); the delimiter is sniffed from line one.

    A row the csv module cannot read (a NUL byte, a field over its size limit) raises
    InputError naming the line, or with `on_error` is passed to it and skipped.
    """
    first_line = stream.readline().lstrip("\ufeff")
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(itertools.chain([first_line], stream), delimiter=delimiter)
    try:
        header = [h.strip().lower() or f"(column {i})"
                  for i, h in enumerate(next(reader, []), 1)]
    except csv.Error as exc:
        raise InputError(f"the header line cannot be read: {exc}") from None

    def rows() -> Iterator[tuple[int, list[str]]]:
        while True:
            try:
                for cells in reader:
                    if cells and (cells[0].strip() or any(c.strip() for c in cells)):
                        yield reader.line_num, cells
                return
            except csv.Error as exc:
                if on_error is None:
                    raise InputError(f"line {reader.line_num}: {exc}") from None
                on_error(reader.line_num, str(exc))

    return CsvTable(header, rows(), delimiter)


def open_table(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The lower-cased header, and (line number, cells) for each non-blank row after it.

    InputError names the file when it is missing, unreadable or not UTF-8.
    """
    try:
        with path.open("rb") as raw:
            check_utf8(raw, str(path))
        stream = path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot be read: {exc}") from exc
    table = read_table(stream)

    def rows() -> Iterator[tuple[int, list[str]]]:
        with stream:
            yield from table.rows

    return table.header, rows()


def named(header: list[str], cells: list[str]) -> dict[str, str]:
    """A row as column -> stripped value; a short row reads as blanks."""
    return {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header)}
