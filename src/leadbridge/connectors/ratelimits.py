"""What a CRM says about its own rate limits, read from the headers of its answers.

Every connector that speaks HTTP passes its responses' headers to `parse_rate_headers` and
exposes the result as `rate_info` (see `connectors.base.ReportsRateLimits`); the sync engine
hands it to the connection's API budget, where a CRM saying "0 left until T" wins over the
hub's own count. Header families understood:

- common: `X-RateLimit-Limit`, `-Remaining`, `-Reset` (seconds from now, or a Unix time);
- IETF draft: `RateLimit-Limit`, `-Remaining`, `-Reset` (seconds), or from draft 08 on
  `RateLimit: "policy";r=50;t=30` with `RateLimit-Policy: "policy";q=100;w=60`;
- HTTP: `Retry-After` (seconds or an HTTP date);
- HubSpot: `X-HubSpot-RateLimit-Max`, `-Remaining`, `-Interval-Milliseconds`, `-Daily`,
  `-Daily-Remaining`, `-Secondly`, `-Secondly-Remaining`;
- Dataverse: `x-ms-ratelimit-burst-remaining-xrm-requests` and
  `x-ms-ratelimit-time-remaining-xrm-requests` (a 5-minute sliding window);
- Salesforce: `Sforce-Limit-Info: api-usage=N/M` (a 24-hour allocation).

A malformed value never fails the call that carried it: it is left out and named in
`RateInfo.problems`, so a person can see what the CRM sent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

# Unix times are larger than this; smaller reset values are seconds from now
_EPOCH_THRESHOLD = 10**9
_DATAVERSE_WINDOW = timedelta(minutes=5)
_MAX_DELAY = timedelta(days=31)  # a longer wait is a malformed value, not a limit


@dataclass(frozen=True, slots=True)
class RateWindow:
    """One limit the CRM reported: how many calls are left of how many, and when it resets
    (None when the CRM did not say)."""

    name: str  # e.g. "x-ratelimit", "hubspot-daily", "salesforce-api-usage"
    remaining: float
    limit: float | None = None
    reset_at: datetime | None = None

    @property
    def exhausted(self) -> bool:
        return self.remaining <= 0


@dataclass(frozen=True, slots=True)
class RateInfo:
    """Rate-limit facts from one answer of the CRM."""

    seen_at: datetime
    windows: tuple[RateWindow, ...] = ()
    retry_at: datetime | None = None  # from Retry-After
    problems: tuple[str, ...] = ()  # malformed headers, named with what was wrong

    @property
    def tightest(self) -> RateWindow | None:
        """The window with the fewest calls left (as a share of its limit when known)."""
        if not self.windows:
            return None
        return min(self.windows, key=lambda w: (w.remaining / w.limit if w.limit else math.inf,
                                                w.remaining))

    def blocked_until(self, fallback: timedelta, *, retry_after: bool = True) -> datetime | None:
        """Until when the CRM will refuse calls: the latest of Retry-After (unless
        `retry_after` is off) and the resets of exhausted windows (an exhausted window that
        gave no reset counts `fallback`)."""
        moments = [self.retry_at] if self.retry_at and retry_after else []
        for window in self.windows:
            if window.exhausted:
                moments.append(window.reset_at or self.seen_at + fallback)
        return max(moments) if moments else None

    def __bool__(self) -> bool:
        return bool(self.windows or self.retry_at or self.problems)


class _Reader:
    def __init__(self, headers: Mapping[str, str], now: datetime) -> None:
        self.headers = {k.lower(): v.strip() for k, v in headers.items()}
        self.now = now
        self.windows: list[RateWindow] = []
        self.problems: list[str] = []

    def get(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def number(self, name: str, *, grouped: bool = False) -> float | None:
        return self.count(name, self.get(name), grouped=grouped)

    def count(self, name: str, raw: str | None, *, grouped: bool = False) -> float | None:
        """`raw` (from header `name`) as a number of zero or more; a problem noted if not."""
        if raw is None:
            return None
        try:
            value = float(raw.replace(",", "") if grouped else raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            self.problems.append(f"{name}: {raw[:60]!r} is not a number of zero or more")
            return None
        return value

    def reset(self, name: str, raw_value: float | None) -> datetime | None:
        """A reset given as seconds from now or as a Unix time."""
        if raw_value is None:
            return None
        delay = raw_value - self.now.timestamp() if raw_value >= _EPOCH_THRESHOLD else raw_value
        if delay > _MAX_DELAY.total_seconds():
            self.problems.append(f"{name}: {raw_value:g} is too far in the future")
            return None
        return self.now + timedelta(seconds=max(delay, 0.0))

    def window(self, name: str, remaining: float | None, limit: float | None,
               reset_at: datetime | None) -> None:
        if remaining is not None:
            self.windows.append(RateWindow(name, remaining, limit, reset_at))


def parse_rate_headers(headers: Mapping[str, str], now: datetime | None = None) -> RateInfo:
    """The rate-limit facts in an answer's headers (empty when it carried none)."""
    r = _Reader(headers, now or datetime.now(UTC))
    _common(r)
    _ietf(r)
    _hubspot(r)
    _dataverse(r)
    _salesforce(r)
    retry_at = retry_after_moment(r.get("Retry-After"), r.now, r.problems)
    return RateInfo(r.now, tuple(r.windows), retry_at, tuple(r.problems))


def retry_after_moment(raw: str | None, now: datetime,
                       problems: list[str] | None = None) -> datetime | None:
    """`Retry-After` as a moment: delay-seconds or an HTTP date (RFC 9110, 10.2.3)."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    moment: datetime | None = None
    if text.isdigit():
        moment = now + timedelta(seconds=int(text)) if len(text) < 10 else None
    else:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            moment = None
        if moment is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    if moment is None or moment - now > _MAX_DELAY:
        if problems is not None:
            problems.append(f"Retry-After: {text[:60]!r} is neither seconds nor an HTTP date "
                            "within a month")
        return None
    return max(moment, now)


def _common(r: _Reader) -> None:
    remaining = r.number("X-RateLimit-Remaining")
    r.window("x-ratelimit", remaining, r.number("X-RateLimit-Limit"),
             r.reset("X-RateLimit-Reset", r.number("X-RateLimit-Reset")))


_ITEM = re.compile(r'^\s*(?:"[^"]*"|[A-Za-z0-9_.-]+)?\s*((?:;\s*[a-z]+\s*=\s*[^;,]*)*)\s*$')
_PARAM = re.compile(r";\s*([a-z]+)\s*=\s*([^;,]*)")


def _ietf(r: _Reader) -> None:
    if r.get("RateLimit-Remaining") is not None:  # draft 07 and earlier: one header each
        r.window("ratelimit", r.number("RateLimit-Remaining"), _first_number(r, "RateLimit-Limit"),
                 r.reset("RateLimit-Reset", r.number("RateLimit-Reset")))
    raw = r.get("RateLimit")
    if raw is None:
        return
    # draft 08 on: `RateLimit: "policy";r=50;t=30`; older: `limit=100, remaining=50, reset=5`
    params = _structured(raw)
    if params is None or "r" not in params:
        legacy = dict(_pairs(raw))
        if "remaining" not in legacy:
            r.problems.append(f"RateLimit: {raw[:60]!r} has no remaining quota (r= or remaining=)")
            return
        params = {"r": legacy["remaining"], "t": legacy.get("reset", ""),
                  "q": legacy.get("limit", "")}
    remaining = r.count("RateLimit", params.get("r"))
    reset = r.count("RateLimit", params.get("t")) if params.get("t") else None
    limit = r.count("RateLimit", params.get("q")) if params.get("q") else None
    if limit is None and (policy := r.get("RateLimit-Policy")) is not None:
        found = _structured(policy)
        if found and found.get("q"):
            limit = r.count("RateLimit-Policy", found["q"])
    r.window("ratelimit", remaining, limit, r.reset("RateLimit", reset))


def _structured(raw: str) -> dict[str, str] | None:
    first = raw.split(",")[0]
    if _ITEM.match(first) is None:
        return None
    return {k: v.strip() for k, v in _PARAM.findall(first)}


def _pairs(raw: str) -> list[tuple[str, str]]:
    found = []
    for part in raw.split(","):
        key, sep, value = part.partition("=")
        if sep:
            found.append((key.strip().lower(), value.strip()))
    return found


def _first_number(r: _Reader, name: str) -> float | None:
    """`RateLimit-Limit: 100, 100;w=60` (draft 03-07 quota policies): the first number."""
    raw = r.get(name)
    if raw is None:
        return None
    head = raw.split(",")[0].split(";")[0].strip()
    return r.count(name, head)


def _hubspot(r: _Reader) -> None:
    interval = r.number("X-HubSpot-RateLimit-Interval-Milliseconds")
    reset = r.now + timedelta(milliseconds=interval) if interval is not None else None
    r.window("hubspot-interval", r.number("X-HubSpot-RateLimit-Remaining"),
             r.number("X-HubSpot-RateLimit-Max"), reset)
    r.window("hubspot-secondly", r.number("X-HubSpot-RateLimit-Secondly-Remaining"),
             r.number("X-HubSpot-RateLimit-Secondly"), r.now + timedelta(seconds=1))
    # the daily limit resets at midnight in the account's time zone, which the headers do
    # not give: the next UTC midnight is the guess, and the next answer corrects it
    midnight = datetime.combine(r.now.date() + timedelta(days=1), datetime.min.time(), UTC)
    r.window("hubspot-daily", r.number("X-HubSpot-RateLimit-Daily-Remaining"),
             r.number("X-HubSpot-RateLimit-Daily"), midnight)


def _dataverse(r: _Reader) -> None:
    # a 5-minute sliding window: without Retry-After, a full window is the safe wait
    end = r.now + _DATAVERSE_WINDOW
    r.window("dataverse-requests",
             r.number("x-ms-ratelimit-burst-remaining-xrm-requests", grouped=True), None, end)
    r.window("dataverse-execution-ms",
             r.number("x-ms-ratelimit-time-remaining-xrm-requests", grouped=True), None, end)


_SFORCE = re.compile(r"api-usage\s*=\s*(\d+)\s*/\s*(\d+)")


def _salesforce(r: _Reader) -> None:
    raw = r.get("Sforce-Limit-Info")
    if raw is None:
        return
    found = _SFORCE.search(raw)
    if found is None:
        r.problems.append(f"Sforce-Limit-Info: {raw[:60]!r} has no api-usage=N/M")
        return
    used, limit = int(found[1]), int(found[2])
    # a rolling 24-hour allocation: no reset moment is given
    r.window("salesforce-api-usage", max(limit - used, 0), limit, None)
