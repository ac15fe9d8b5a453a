from __future__ import annotations

import gc
import threading

from leadbridge.gctune import BULK_THRESHOLDS, SERVER_THRESHOLDS, relaxed_gc, settle_server


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


def test_a_settled_server_collects_less_often_and_froze_what_it_held() -> None:
    before = gc.get_threshold()
    try:
        settle_server()
        assert gc.get_threshold() == SERVER_THRESHOLDS
        assert gc.get_freeze_count() > 0
        with relaxed_gc():  # an import inside the server raises them further, then back
            assert gc.get_threshold()[0] == BULK_THRESHOLDS[0]
        assert gc.get_threshold() == SERVER_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
