"""A connection's API budget: how many calls the hub may still make to the CRM, per UTC day
and per window, and whether the CRM itself has said to stop.

The engine asks `check()` before every connector call and reports each call's cost (the
connector's request count) and what the CRM said about its limits with `spend()`. Usage lives
in the `api_budgets` table, so restarts and every process and worker share it. The CRM's own
word wins over the hub's count: an answer saying "0 left until T" (or a long Retry-After)
blocks the connection until T even when the hub's budget has calls to spare.

One cycle per connection runs at a time, so a connection has one spender: `check` and
`spend` need no lock between them. A check allows a call when at least one is left; a call
that turns out to cost several requests (a connector doing one request per record) may pass
the limit by that much, and the next check stops the cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, case, select
from sqlalchemy.dialects import postgresql, sqlite

from leadbridge.config import BudgetSettings, SyncSettings
from leadbridge.connectors.ratelimits import RateInfo
from leadbridge.errors import LeadBridgeError
from leadbridge.store.db import writing
from leadbridge.store.tables import api_budgets


class BudgetExhausted(LeadBridgeError):
    """No call to the CRM may be made before `resumes_at`; the message says whose limit
    (the hub's budget or the CRM's) and when work resumes. `sent` says whether the call
    that found out reached the CRM (a refused answer) or was never made."""

    def __init__(self, reason: str, resumes_at: datetime, *, sent: bool = False) -> None:
        super().__init__(f"budget exhausted, resumes at {_iso(resumes_at)}: {reason}")
        self.reason = reason
        self.resumes_at = resumes_at
        self.sent = sent


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    calls_per_day: int | None
    calls_per_window: int | None
    window_seconds: int


def limits_for(sync: SyncSettings, connection: str) -> BudgetLimits:
    """`sync.budget`, with the settings given in `sync.budgets.<connection>` taking over."""
    chosen: dict[str, Any] = sync.budget.model_dump()
    override: BudgetSettings | None = sync.budgets.get(connection)
    if override is not None:
        chosen.update({name: getattr(override, name) for name in override.model_fields_set})
    return BudgetLimits(**chosen)


@dataclass(frozen=True, slots=True)
class BudgetUsage:
    """A connection's budget as stored: for `leadbridge sync` output and the API."""

    day: date
    day_calls: int
    window_start: datetime
    window_calls: int
    blocked_until: datetime | None
    blocked_reason: str | None
    crm_window: str | None
    crm_remaining: float | None
    crm_limit: float | None
    crm_seen_at: datetime | None


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """Where a connection's budget stands now: what a person asks before a cycle runs."""

    connection: str
    limits: BudgetLimits
    day: date
    day_calls: int  # calls on the current UTC day
    window_start: datetime
    window_calls: int  # calls in the current window
    blocked_until: datetime | None  # no call before this (None: calls may be made)
    blocked_reason: str | None
    crm_window: str | None  # the tightest limit the CRM reported, and what was left of it
    crm_remaining: float | None
    crm_limit: float | None
    crm_seen_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return None if moment is None else _iso(moment)

        return {
            "connection": self.connection, "day": self.day.isoformat(),
            "day_calls": self.day_calls, "calls_per_day": self.limits.calls_per_day,
            "window_start": iso(self.window_start), "window_seconds": self.limits.window_seconds,
            "window_calls": self.window_calls, "calls_per_window": self.limits.calls_per_window,
            "blocked_until": iso(self.blocked_until), "blocked_reason": self.blocked_reason,
            "crm": None if self.crm_window is None else {
                "window": self.crm_window, "remaining": self.crm_remaining,
                "limit": self.crm_limit, "seen_at": iso(self.crm_seen_at)},
        }


def budget_status(db: Engine, sync: SyncSettings, connection_id: int, name: str, *,
                  now: datetime | None = None) -> BudgetStatus:
    """The connection's budget as of `now`: counts of a past day or window read as 0, and a
    block that has ended as none; `blocked_until` is set exactly when `check()` would stop."""
    now = now or datetime.now(UTC)
    budget = ApiBudget(db, connection_id, limits_for(sync, name))
    start = budget._window_start(now)
    used = budget.usage()
    status = BudgetStatus(name, budget.limits, now.date(), 0, start, 0, None, None, None, None,
                          None, None)
    if used is not None:
        status = replace(status, day_calls=used.day_calls if used.day == now.date() else 0,
                         window_calls=used.window_calls if used.window_start == start else 0,
                         crm_window=used.crm_window, crm_remaining=used.crm_remaining,
                         crm_limit=used.crm_limit, crm_seen_at=used.crm_seen_at)
    stop = budget.stopped(used, now)
    if stop is not None:
        status = replace(status, blocked_until=stop.resumes_at, blocked_reason=stop.reason)
    return status


class ApiBudget:
    def __init__(self, db: Engine, connection_id: int, limits: BudgetLimits, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.db = db
        self.connection_id = connection_id
        self.limits = limits
        self.clock = clock

    def usage(self) -> BudgetUsage | None:
        with self.db.connect() as conn:
            row = conn.execute(select(api_budgets).where(
                api_budgets.c.connection_id == self.connection_id)).first()
        if row is None:
            return None
        values = dict(row._mapping)
        del values["connection_id"], values["updated_at"]
        return BudgetUsage(**values)

    def check(self) -> None:
        """Raise BudgetExhausted when no call may be made now."""
        now = self.clock()
        stop = self.stopped(self.usage(), now)
        if stop is not None:
            raise stop

    def stopped(self, used: BudgetUsage | None, now: datetime) -> BudgetExhausted | None:
        """Why no call may be made at `now` with `used` as stored, or None when one may."""
        if used is None:
            return None
        if used.blocked_until is not None and used.blocked_until > now:
            return BudgetExhausted(used.blocked_reason or "the CRM asked to wait",
                                   used.blocked_until)
        per_day = self.limits.calls_per_day
        if per_day is not None and used.day == now.date() and used.day_calls >= per_day:
            midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
            return BudgetExhausted(f"{used.day_calls} of {per_day} calls for the day spent "
                                   "(sync.budget.calls_per_day)", midnight)
        per_window = self.limits.calls_per_window
        start = self._window_start(now)
        if (per_window is not None and used.window_start == start
                and used.window_calls >= per_window):
            return BudgetExhausted(
                f"{used.window_calls} of {per_window} calls for this "
                f"{self.limits.window_seconds}-second window spent "
                "(sync.budget.calls_per_window)",
                start + timedelta(seconds=self.limits.window_seconds))
        return None

    def spend(self, calls: int, rate: RateInfo | None = None, *, refused: bool = False) -> None:
        """Count `calls` made now, and take in what the CRM said about its limits. Its
        Retry-After blocks the connection only when it `refused` the call as a whole: one
        that answered per record leaves a record's Retry-After to that record's retry."""
        now = self.clock()
        start = self._window_start(now)
        values: dict[str, Any] = {
            "day": now.date(), "day_calls": calls, "window_start": start,
            "window_calls": calls, "updated_at": now}
        t = api_budgets.c
        ins = (postgresql.insert if self.db.dialect.name == "postgresql"
               else sqlite.insert)(api_budgets)
        changes: dict[str, Any] = {
            "day_calls": case((t.day == ins.excluded.day, t.day_calls + ins.excluded.day_calls),
                              else_=ins.excluded.day_calls),
            "day": ins.excluded.day,
            "window_calls": case((t.window_start == ins.excluded.window_start,
                                  t.window_calls + ins.excluded.window_calls),
                                 else_=ins.excluded.window_calls),
            "window_start": ins.excluded.window_start,
            "updated_at": ins.excluded.updated_at,
        }
        if rate:
            absorbed = self._absorb(rate, refused)
            values.update(absorbed)
            changes.update({name: ins.excluded[name] for name in absorbed})
        with writing(self.db) as conn:
            conn.execute(ins.values(connection_id=self.connection_id, **values)
                         .on_conflict_do_update(index_elements=[t.connection_id], set_=changes))

    def _absorb(self, rate: RateInfo, refused: bool) -> dict[str, Any]:
        """Columns for what the CRM said; only what it said (a header it did not send leaves
        the stored value alone)."""
        found: dict[str, Any] = {}
        window = rate.tightest
        if window is not None:
            found.update(crm_window=window.name, crm_remaining=window.remaining,
                         crm_limit=window.limit, crm_seen_at=rate.seen_at)
        if window is not None or (refused and rate.retry_at is not None):
            until = rate.blocked_until(timedelta(seconds=self.limits.window_seconds),
                                       retry_after=refused)
            found["blocked_until"] = until
            found["blocked_reason"] = None if until is None else _crm_reason(rate)
        return found

    def _window_start(self, now: datetime) -> datetime:
        """Windows are aligned to the clock, so every process agrees where one begins."""
        seconds = self.limits.window_seconds
        stamp = int(now.timestamp()) // seconds * seconds
        return datetime.fromtimestamp(stamp, UTC)


def _crm_reason(rate: RateInfo) -> str:
    exhausted = [w for w in rate.windows if w.exhausted]
    if exhausted:
        window = exhausted[0]
        of = f" of {window.limit:g}" if window.limit is not None else ""
        return f"the CRM reported 0{of} calls left ({window.name})"
    return "the CRM asked to wait (Retry-After)"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
