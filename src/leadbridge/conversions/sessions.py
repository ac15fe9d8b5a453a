"""A browser visitor's sessions, rebuilt from its hits, each with the channel, source and
campaign that brought it: the touches attribution credits.

A new session starts, as in web analytics tools, when
- the visitor's first hit arrives (the first one inside the window read),
- more than 30 minutes passed since the visitor's previous hit (`VISIT_GAP`), or
- a hit names a marketing source — campaign parameters (utm_*, mtm_*, pk_*, `_rcn`) or an
  outside referrer — that differs from the current session's channel, source and campaign.
A direct or internal hit never starts a session by itself (a visitor typing the address
in the middle of a visit stays in it); after 30 quiet minutes it starts a direct session.
Bots' hits and e-mail opens (the tracking pixel is not a visit) take no part.

Channels come from `leadbridge.tracking.channels`, stored on every hit at intake: direct,
organic_search, paid_search, email, social, referral, campaign. The source is the
campaign's `utm_source`, else the referrer's host without `www.`; the campaign is the
campaign's name; both are `(none)` when the hit has none.

One query reads the hits of up to 8,192 visitors (the intake's batches are smaller) in
visitor and time order through the (browser_visitor_id, occurred_at) index; only the columns
sessions need travel, and a referrer only when its hit can start a session.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection

from leadbridge.store.bulk import driver_sql, in_list, time_converter
from leadbridge.tracking.channels import (
    DIRECT,
    NO_SOURCE,
    VISIT_GAP,
    VISIT_STARTERS,
    visit_source,
)

_IDS_PER_QUERY = 8192  # SQLite allows 32,766 parameters in a statement

Touch = tuple[str, str, str]  # channel, source, campaign
DIRECT_TOUCH: Touch = (DIRECT, NO_SOURCE, NO_SOURCE)


@dataclass(frozen=True, slots=True)
class Session:
    """One visit of a browser visitor, as attribution sees it."""

    browser_visitor_id: int
    started_at: datetime
    channel: str
    source: str
    campaign: str

    @property
    def touch(self) -> Touch:
        return (self.channel, self.source, self.campaign)


@dataclass(slots=True)
class VisitorSessions:
    """The sessions of one visitor in start order. `starts` are datetimes as the driver's
    times read: naive UTC on SQLite, aware on PostgreSQL; `start_key` turns an aware time
    into the same form, to bisect them."""

    starts: list[Any]
    touches: list[Touch]


_STARTERS = ", ".join(f"'{c}'" for c in sorted(VISIT_STARTERS))
_SQL = f"""
SELECT browser_visitor_id, occurred_at, channel,
       CASE WHEN channel IN ({_STARTERS}) THEN referrer END, campaign_name, campaign_source
FROM hits
WHERE browser_visitor_id IN ({{ids}}) AND occurred_at >= ? AND occurred_at <= ?
  AND NOT is_bot AND kind <> 'email_open'
ORDER BY browser_visitor_id, occurred_at
"""


def read_sessions(conn: Connection, browser_visitor_ids: Sequence[int], *, since: datetime,
                  until: datetime, timeout: timedelta = VISIT_GAP,
                  ) -> dict[int, VisitorSessions]:
    """Sessions of each visitor started between `since` and `until` (inclusive), in one query.

    Hits before `since` are not read: a visit under way at `since` counts from its first hit
    after it. Visitors without a session in the window are absent from the answer.
    """
    if not browser_visitor_ids:
        return {}
    dialect = conn.dialect.name
    to_driver = time_converter(dialect)
    ids = sorted(set(browser_visitor_ids))
    found: dict[int, VisitorSessions] = {}
    for start in range(0, len(ids), _IDS_PER_QUERY):
        # padded to a power of two: the driver keeps one prepared statement per list length
        markers, chunk = in_list(ids[start : start + _IDS_PER_QUERY], dialect)
        result = conn.exec_driver_sql(driver_sql(_SQL.format(ids=markers), dialect),
                                      (*chunk, to_driver(since), to_driver(until)))
        try:  # the driver's own rows: no Row object per hit
            _fold(result.cursor.fetchall(), timeout, found)
        finally:
            result.close()
    return found


def start_key(dialect: str) -> Callable[[datetime], datetime]:
    """An aware time in the form of `VisitorSessions.starts` on `dialect`."""
    if dialect != "sqlite":
        return _same_moment
    return _naive_utc


def _same_moment(moment: datetime) -> datetime:
    return moment


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None)


def _fold(rows: Sequence[Any], timeout: timedelta, found: dict[int, VisitorSessions]) -> None:
    """Hits in (visitor, time) order -> sessions (see the module's docstring for the rules)."""
    parse = datetime.fromisoformat
    current = VisitorSessions([], [])
    current_id = None
    last: datetime | None = None
    for visitor_id, moment, channel, referrer, campaign_name, campaign_source in rows:
        when = parse(moment) if isinstance(moment, str) else moment
        if visitor_id != current_id:
            current_id = visitor_id
            current = found[visitor_id] = VisitorSessions([], [])
            gap = True
        else:
            assert last is not None
            gap = when - last > timeout
        last = when
        if channel in VISIT_STARTERS:
            touch = _touch(channel, referrer, campaign_name, campaign_source)
            if gap or touch != current.touches[-1]:
                current.starts.append(when)
                current.touches.append(touch)
        elif gap:
            current.starts.append(when)
            current.touches.append(DIRECT_TOUCH)


@lru_cache(maxsize=50_000)
def _touch(channel: str, referrer: str | None, campaign_name: str | None,
           campaign_source: str | None) -> Touch:
    return (channel, visit_source(channel, referrer, campaign_source),
            (campaign_name or "").strip()[:300] or NO_SOURCE)


def visitor_sessions(conn: Connection, browser_visitor_id: int, *,
                     since: datetime | None = None, until: datetime | None = None,
                     timeout: timedelta = VISIT_GAP) -> list[Session]:
    """One visitor's sessions (all of them unless bounded), oldest first."""
    since = since or datetime(1970, 1, 1, tzinfo=UTC)
    until = until or datetime(9999, 12, 31, tzinfo=UTC)
    read = read_sessions(conn, [browser_visitor_id], since=since, until=until, timeout=timeout)
    visitor = read.get(browser_visitor_id)
    if visitor is None:
        return []
    return [Session(browser_visitor_id, driver_time(start), *touch)
            for start, touch in zip(visitor.starts, visitor.touches, strict=True)]


def driver_time(value: Any) -> datetime:
    """A time as the driver returned it (text on SQLite) as a UTC-aware datetime."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)
