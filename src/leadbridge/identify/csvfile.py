"""Reading the customer's CSV files (IP ranges, companies): UTF-8 with or without a BOM,
comma or semicolon separated, the first line naming the columns."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from leadbridge.errors import InputError


def open_table(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The lower-cased header, and (line number, cells) for each non-blank row after it.

    InputError names the file when it is missing, unreadable or not UTF-8.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot be read: {exc}") from exc
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip().lower() or f"(column {i})" for i, h in enumerate(next(reader, []), 1)]

    def rows() -> Iterator[tuple[int, list[str]]]:
        for cells in reader:
            if any(c.strip() for c in cells):
                yield reader.line_num, cells

    return header, rows()


def named(header: list[str], cells: list[str]) -> dict[str, str]:
    """A row as column -> stripped value; a short row reads as blanks."""
    return {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header)}
