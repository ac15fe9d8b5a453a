"""Fewer garbage-collector passes where the work allocates many short-lived objects.

CPython's cyclic collector runs every 700 net allocations of container objects (tuples,
lists, row objects) and now and then walks every object the process holds. Neither a bulk
import nor a tracking request makes cycles worth finding: reference counting frees their
objects at once.

- `relaxed_gc()`: a bulk import creates and frees tens of thousands of tuples per batch, and
  the collector cost a fifth of its time. Inside the block it runs about a hundred times less
  often; the thresholds are put back when the block ends.
- `settle_server()`: once the server has started, the objects it holds for its whole life
  (modules, settings, routes, compiled rules) are moved out of the collector's sight
  (`gc.freeze`), and the collector runs less often. The intake's slowest requests waited for
  full collections of those objects.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["relaxed_gc", "settle_server"]

BULK_THRESHOLDS = (100_000, 50, 1000)
SERVER_THRESHOLDS = (10_000, 20, 100)
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


def settle_server() -> None:
    """Freeze what the process holds now and collect less often from here on (a server
    process, once it has started)."""
    gc.collect()
    gc.freeze()
    with _lock:
        if _depth == 0:
            gc.set_threshold(*SERVER_THRESHOLDS)
