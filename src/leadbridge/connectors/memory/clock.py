"""The memory CRM's clock: time that tests move, so modified times are known in advance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

START = datetime(2024, 1, 1, tzinfo=UTC)


class MemoryClock:
    """A clock that moves on by `step` at every reading.

    Each reading is a distinct instant, so a change made after an engine read the clock
    (for its cycle's `until`) is always later than that `until`, as it would be in real time.
    A `step` of zero freezes the clock until `advance` moves it.
    """

    def __init__(self, start: datetime = START, step: timedelta = timedelta(seconds=1)) -> None:
        if start.tzinfo is None:
            raise ValueError("the clock's start must carry a time zone")
        self._now = start
        self._step = step

    def __call__(self) -> datetime:
        """The current time; the clock then moves on by its step."""
        now = self._now
        self._now += self._step
        return now

    def __repr__(self) -> str:
        return f"MemoryClock(next={self._now.isoformat()}, step={self._step})"

    def advance(self, by: timedelta | float) -> None:
        """Move the clock on (seconds or a timedelta), as if time passed with no changes."""
        self._now += by if isinstance(by, timedelta) else timedelta(seconds=by)
