from __future__ import annotations

import gc
import threading

from leadbridge.gctune import BULK_THRESHOLDS, relaxed_gc


def test_thresholds_are_raised_inside_and_restored_after_the_last_block() -> None:
    before = gc.get_threshold()
    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with relaxed_gc():
            entered.set()
            leave.wait(5)

    with relaxed_gc():
        inside = gc.get_threshold()
        worker = threading.Thread(target=other)
        worker.start()
        entered.wait(5)
    assert gc.get_threshold() == inside  # the other block is still inside
    leave.set()
    worker.join(5)
    assert inside == tuple(max(a, b) for a, b in zip(before, BULK_THRESHOLDS, strict=True))
    assert inside[0] > before[0]
    assert gc.get_threshold() == before


def test_thresholds_are_restored_when_the_block_raises() -> None:
    before = gc.get_threshold()
    try:
        with relaxed_gc():
            raise RuntimeError("stop")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
