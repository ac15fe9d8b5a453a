"""Fewer garbage-collector passes while bulk work allocates millions of short-lived objects.

CPython's cyclic collector runs every 700 net allocations of container objects (tuples,
lists, row objects) and, every 100 of those runs, walks every object the process holds. A
bulk import creates and frees tens of thousands of tuples per batch, none in a cycle: the
collector found nothing and cost a fifth of the import's time. Inside `relaxed_gc()` it runs
about a hundred times less often; reference counting still frees everything at once, and the
thresholds are put back when the block ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["relaxed_gc"]

BULK_THRESHOLDS = (100_000, 50, 1000)
_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def relaxed_gc() -> Iterator[None]:
    """Raise the collector's thresholds for the block (nested and concurrent blocks share one
    setting; the last to leave restores the previous one)."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(*(max(now, bulk) for now, bulk in zip(_saved, BULK_THRESHOLDS,
                                                                   strict=True)))
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
