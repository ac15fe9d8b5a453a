"""Writing a batch of prepared hits in one transaction.

For each batch: browser visitors and organisations are found or created (cached between
batches), identifications are applied, hits are inserted with one executemany, and the totals
of organisations, contacts and browsers are updated with one statement per kind. Totals are
additive (`x = x + delta`), so several writer processes can share a PostgreSQL database.
Statements are built once per dialect and reused: compiling SQL per batch would cost more
than writing it. A heartbeat ping is not a hit: it stores the time on page of the hit it
pings for (other pages' time is read from the next hit, see `views.hits`).

Two hooks tell the sync about the events that matter, on the batch's own connection and
inside its transaction (so whatever they write commits or rolls back with the hits): a batch
that created a Website Visitor, and one that moved a Website Visitor's or a contact's score
into another band. Each is called at most once per batch, after the batch's rows are written:
the job a hook queues is locked after those rows in every writer, as two writers sharing a
database need. When neither is set, the writer does no extra work.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Executable

from leadbridge.identify.contacts import Identity, get_or_create_contact, link_browser
from leadbridge.identify.organisations import WEBSITE_VISITOR_TYPES, ensure_organisations
from leadbridge.identify.resolvers import OrgMatch
from leadbridge.scoring.decay import Bands, Decay
from leadbridge.scoring.ruleset import rebase
from leadbridge.store.bulk import (
    BulkInsert,
    driver_sql,
    json_rows,
    pipelined,
    run_many,
    run_one,
    time_converter,
    uuid_converter,
)
from leadbridge.store.state import config_version
from leadbridge.store.tables import (
    hits,
    intake_rejections,
    organisations,
)
from leadbridge.tracking.channels import VISIT_GAP

# a browser's last_seen_at is rewritten only when it moved by this much: a visitor reading
# several pages costs one update, not one per page view
SEEN_PRECISION = timedelta(minutes=5)
_CACHE_LIMIT = 200_000


@dataclass(slots=True)
class PreparedHit:
    """A validated hit waiting for its batch: the row plus what the writer must resolve."""

    site_id: int
    visitor_key: str
    row: dict[str, Any]  # hit columns but the three ids the writer fills
    org: OrgMatch | None = None
    identity: Identity | None = None
    is_ping: bool = False


@dataclass(slots=True)
class _Totals:
    weight: float = 0.0
    count: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def add(self, weight: float, moment: datetime) -> None:
        self.weight += weight
        self.count += 1
        self.first = moment if self.first is None or moment < self.first else self.first
        self.last = moment if self.last is None or moment > self.last else self.last


@dataclass(frozen=True)
class _TotalsSql:
    """Adding a batch's totals to one table. SQLite: an executemany of `_TOTALS` in key order;
    PostgreSQL: the rows locked in key order, then one `_PG_TOTALS` for them all."""

    update: str
    lock: str | None = None

    @classmethod
    def build(cls, table: str, first: str, last: str, dialect: str) -> _TotalsSql:
        if dialect == "postgresql":
            return cls(_PG_TOTALS.format(table=table, first=first, last=last),
                       _PG_LOCK.format(table=table))
        return cls(driver_sql(_TOTALS.format(table=table, first=first, last=last,
                                             stamp=", updated_at = ?"), dialect))

    def lock_rows(self, conn: Connection, ids: Iterable[int]) -> list[int]:
        """Lock these rows in key order now (PostgreSQL; SQLite's one write lock is held);
        their ids in that order."""
        ordered = sorted(ids)
        if self.lock is not None and ordered:
            run_one(conn, self.lock, (ordered,), planned_each_time=True)
        return ordered

    def run(self, conn: Connection, totals: dict[int, _Totals], stamp: Any,
            to_time: Callable[[Any], Any]) -> None:
        if self.lock is None:
            run_many(conn, self.update, _totals_params(totals, stamp, to_time))
            return
        ids = self.lock_rows(conn, totals)
        run_one(conn, self.update, (stamp, json_rows(
            [{"id": k, "w": t.weight, "n": t.count, "f": t.first, "l": t.last}
             for k, t in totals.items()]), ids), planned_each_time=True)


def _totals_params(totals: dict[int, _Totals], stamp: Any,
                   to_time: Callable[[Any], Any]) -> list[tuple[Any, ...]]:
    """Parameters of `_TOTALS`, in key order: writers sharing a database never deadlock."""
    out = []
    for key, t in sorted(totals.items()):
        first, last = to_time(t.first), to_time(t.last)
        out.append((t.weight, t.count, first, first, last, last, stamp, key))
    return out


_TOTALS = """UPDATE {table} SET score_weight = score_weight + ?, hit_count = hit_count + ?,
 {first} = CASE WHEN {first} IS NULL OR {first} > ? THEN ? ELSE {first} END,
 {last} = CASE WHEN {last} IS NULL OR {last} < ? THEN ? ELSE {last} END{stamp} WHERE id = ?"""
# PostgreSQL: one statement per table for the whole batch (the totals as one JSON parameter),
# after locking the rows in key order, so writers sharing the database never deadlock
# NO KEY UPDATE: the totals change no key, and a plain FOR UPDATE would also wait for the
# key-share locks another writer's foreign keys take (a browser or a contact pointing here)
_PG_LOCK = "SELECT 1 FROM {table} WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE"
_PG_TOTALS = """UPDATE {table} AS t SET score_weight = t.score_weight + d.w,
 hit_count = t.hit_count + d.n,
 {first} = CASE WHEN t.{first} IS NULL OR t.{first} > d.f THEN d.f ELSE t.{first} END,
 {last} = CASE WHEN t.{last} IS NULL OR t.{last} < d.l THEN d.l ELSE t.{last} END,
 updated_at = %s FROM json_to_recordset(%s::json)
 AS d(id integer, w double precision, n integer, f timestamptz, l timestamptz)
 WHERE t.id = d.id AND t.id = ANY(%s::integer[])"""  # the ids again: an index scan, not a seq scan
# new browsers, and known ones whose last_seen_at moved on, in one statement in key order:
# every browser row a batch locks is locked here, in the order every writer uses
_BROWSERS = ("INSERT INTO browser_visitors (site_id, visitor_key, first_seen_at, last_seen_at) "
             "VALUES {values} ON CONFLICT (site_id, visitor_key) DO UPDATE SET "
             "last_seen_at = CASE WHEN excluded.last_seen_at > browser_visitors.last_seen_at "
             "THEN excluded.last_seen_at ELSE browser_visitors.last_seen_at END "
             "RETURNING site_id, visitor_key, id, contact_id")
_BROWSER_CHUNK = 250
_WEIGHTS_FOR = 30.0  # seconds a remembered score weight is trusted (other writers add too)
_VISITOR_TYPES = "(" + ", ".join(f"'{t}'" for t in WEBSITE_VISITOR_TYPES) + ")"
# A contact belongs to the Website Visitor it was last seen from (an ISP or a blocked one
# changes nothing), so the CRM contact can show that visitor's score and permalink.
_CONTACT_ORGANISATION = (
    "UPDATE contacts SET organisation_id = ?, updated_at = ? WHERE id = ? "
    "AND (organisation_id IS NULL OR organisation_id <> ?) AND EXISTS (SELECT 1 FROM "
    "organisations o WHERE o.id = ? AND o.type IN ("
    + ", ".join(f"'{kind}'" for kind in WEBSITE_VISITOR_TYPES)
    + ") AND NOT o.blocked AND o.merged_into_id IS NULL)")


@dataclass(frozen=True)
class _Statements:
    """The writer's SQL for one dialect, written once (Core would compile it every batch)."""

    dialect: str
    insert_hits: BulkInsert
    org_totals: _TotalsSql
    contact_totals: _TotalsSql
    time_on_page: str
    contact_organisation: str
    add_rejections: Executable

    def upsert_browsers(self, count: int) -> str:
        values = ", ".join(["(?, ?, ?, ?)"] * count)
        return driver_sql(_BROWSERS.format(values=values), self.dialect)


@cache
def _statements(dialect: str) -> _Statements:
    ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rej = ins(intake_rejections)
    return _Statements(
        dialect=dialect,
        insert_hits=BulkInsert(hits, dialect),
        org_totals=_TotalsSql.build("organisations", "first_visit_at", "last_visit_at",
                                    dialect),
        contact_totals=_TotalsSql.build("contacts", "first_seen_at", "last_seen_at", dialect),
        time_on_page=driver_sql("UPDATE hits SET time_on_page = ? WHERE id = ?", dialect),
        contact_organisation=driver_sql(_CONTACT_ORGANISATION, dialect),
        add_rejections=rej.on_conflict_do_update(
            index_elements=["day", "site_id", "reason"],
            set_={"count": intake_rejections.c.count + rej.excluded.count},
        ),
    )


@dataclass
class BatchWriter:
    """Writes batches; keeps caches of ids between batches (dropped on config changes)."""

    decay: Decay
    browsers: dict[tuple[int, str], list[int | None]] = field(default_factory=dict)
    orgs: dict[str, tuple[int, bool]] = field(default_factory=dict)  # key -> (id, scored)
    last_hit: dict[int, tuple[Any, datetime]] = field(default_factory=dict)
    rejections: Counter[tuple[int, str]] = field(default_factory=Counter)
    # sync hooks (see the module docstring); `bands` is needed for `on_band_change`
    on_new_organisations: Callable[[Connection], None] | None = None
    on_band_change: Callable[[Connection], None] | None = None
    bands: Bands | None = None
    # (kind, id) -> score weight as of this writer's last batch; None: not a Website Visitor
    weights: dict[tuple[str, int], float | None] = field(default_factory=dict)
    _weights_since: float = 0.0
    seen_written: dict[int, datetime] = field(default_factory=dict)  # browser -> last_seen_at
    _seen_version: str | None = None
    _version_checked: float = 0.0

    def forget(self) -> None:
        self.browsers.clear()
        self.orgs.clear()
        self.last_hit.clear()
        self.weights.clear()
        self.seen_written.clear()

    def refresh_if_changed(self, conn: Connection, monotonic_now: float) -> None:
        if monotonic_now - self._version_checked < 1.0:
            return
        self._version_checked = monotonic_now
        version = config_version(conn)
        if version != self._seen_version:
            self.forget()
            self._seen_version = version

    def write(self, conn: Connection, batch: list[PreparedHit], now: datetime) -> None:
        """Store `batch` on `conn` (the caller commits)."""
        sql = _statements(conn.dialect.name)
        if max(len(self.browsers), len(self.last_hit), len(self.seen_written)) > _CACHE_LIMIT:
            self.forget()
        rebased = rebase(conn, self.decay, now)
        if rebased is not None:
            self.decay = rebased
            self.weights.clear()
        bv_ids = self._browser_ids(conn, sql, batch)
        org_ids, new_visitors = self._organisation_ids(conn, batch, now)
        if any(item.identity is not None for item in batch):
            # identification locks contacts; every writer locks Website Visitors before
            # contacts (the totals below do), so it takes theirs first
            sql.org_totals.lock_rows(conn, {org for org, scored in org_ids.values() if scored})
            self._identify(conn, batch, bv_ids, now)

        rows: list[dict[str, Any]] = []
        org_totals: dict[int, _Totals] = {}
        contact_totals: dict[int, _Totals] = {}
        contact_org: dict[int, int] = {}  # contact -> organisation of its latest hit here
        time_on_page: list[tuple[int, Any]] = []
        weight = self.decay.weight
        to_time = time_converter(sql.dialect)
        to_uuid = uuid_converter(sql.dialect)
        for item in batch:
            bv_id, contact_id = bv_ids[(item.site_id, item.visitor_key)]
            assert bv_id is not None
            row = item.row
            moment: datetime = row["occurred_at"]
            if item.is_ping:  # the page it pings for was read until now
                previous = self.last_hit.get(bv_id)
                if previous is not None and timedelta(0) < moment - previous[1] <= VISIT_GAP:
                    seconds = int((moment - previous[1]).total_seconds())
                    time_on_page.append((seconds, to_uuid(previous[0])))
                continue
            org_id, scored = org_ids[item.org.key] if item.org else (None, False)
            row["browser_visitor_id"] = bv_id
            row["contact_id"] = contact_id
            row["organisation_id"] = org_id
            rows.append(row)
            if row["is_bot"]:
                continue
            self.last_hit[bv_id] = (row["id"], moment)
            w = weight(row["score"], moment)
            if org_id is not None and scored:
                org_totals.setdefault(org_id, _Totals()).add(w, moment)
            if contact_id is not None:
                contact_totals.setdefault(contact_id, _Totals()).add(w, moment)
                if org_id is not None and scored:
                    contact_org[contact_id] = org_id

        stamp = to_time(now)
        with pipelined(conn):  # PostgreSQL: one round trip for all of them
            sql.insert_hits.execute(conn, rows)
            if time_on_page:
                run_many(conn, sql.time_on_page, time_on_page)
            if org_totals:
                sql.org_totals.run(conn, org_totals, stamp, to_time)
            if contact_totals:
                sql.contact_totals.run(conn, contact_totals, stamp, to_time)
            if contact_org:
                run_many(conn, sql.contact_organisation, [
                    (org, stamp, contact, org, org) for contact, org in contact_org.items()])
        if self.on_band_change is not None and self.bands is not None:
            moved = self._band_moved(conn, org_totals, now, website_visitors=True)
            if self._band_moved(conn, contact_totals, now, website_visitors=False) or moved:
                self.on_band_change(conn)
        if new_visitors and self.on_new_organisations is not None:
            self.on_new_organisations(conn)  # after the rows, as the band change
        self.flush_rejections(conn, now)

    def _band_moved(self, conn: Connection, totals: dict[int, _Totals], now: datetime, *,
                    website_visitors: bool) -> bool:
        """Whether a total this batch raised crossed a band threshold.

        Weights are remembered between batches (this writer's own additions keep them
        current), so a batch reads only the rows it has not seen for `_WEIGHTS_FOR`; the
        read comes after this batch's update, so the weight before it is the one read less
        the batch's share. Other writers' additions are picked up when the memory expires.
        """
        assert self.bands is not None
        if time.monotonic() - self._weights_since > _WEIGHTS_FOR:
            self.weights.clear()
            self._weights_since = time.monotonic()
        kind = "o" if website_visitors else "c"
        raised = {k: t.weight for k, t in totals.items() if t.weight > 0}
        unseen = [k for k in raised if (kind, k) not in self.weights]
        if unseen:
            marks = ", ".join("?" * len(unseen))
            if website_visitors:  # plain SQL: compiling a Core IN of hundreds of ids costs more
                sql = (f"SELECT id, score_weight FROM organisations WHERE id IN ({marks}) AND "
                       f"type IN {_VISITOR_TYPES} AND NOT blocked AND merged_into_id IS NULL")
            else:
                sql = f"SELECT id, score_weight FROM contacts WHERE id IN ({marks})"
            for key in unseen:
                self.weights[(kind, key)] = None  # not a Website Visitor, unless read below
            for row_id, weight in conn.exec_driver_sql(driver_sql(sql, conn.dialect.name),
                                                       tuple(unseen)):
                self.weights[(kind, row_id)] = weight - raised[row_id]
        # thresholds as weights at `now`: a band changed when one lies in (before, after]
        limits = [self.decay.weight_threshold(score, now)
                  for _, score in self.bands.ordered[1:]]
        moved = False
        for key, added in raised.items():
            before = self.weights[(kind, key)]
            if before is None:
                continue
            self.weights[(kind, key)] = before + added
            if bisect_right(limits, before) != bisect_right(limits, before + added):
                moved = True
        return moved

    # -- steps ---------------------------------------------------------------------------

    def _browser_ids(
        self, conn: Connection, sql: _Statements, batch: list[PreparedHit]
    ) -> dict[tuple[int, str], list[int | None]]:
        """Ids (and contacts) of the batch's browsers, upserting in one statement the unknown
        ones, those whose stored last_seen_at is SEEN_PRECISION or more behind (bots and
        pings do not move it) and those the batch identifies (it will link them)."""
        first: dict[tuple[int, str], datetime] = {}
        last: dict[tuple[int, str], datetime] = {}
        identified: set[tuple[int, str]] = set()
        for i in batch:
            k = (i.site_id, i.visitor_key)
            t = i.row["occurred_at"]
            if k not in first or t < first[k]:
                first[k] = t
            if not i.is_ping and not i.row["is_bot"] and (k not in last or t > last[k]):
                last[k] = t
            if i.identity is not None:
                identified.add(k)
        upsert: dict[tuple[int, str], tuple[datetime, datetime]] = {}  # key -> first, seen
        for k, t in first.items():
            seen = last.get(k, t)
            known = self.browsers.get(k)
            if known is not None and k not in identified:
                written = self.seen_written.get(known[0])  # type: ignore[arg-type]
                if k not in last or (written is not None and seen - written < SEEN_PRECISION):
                    continue
            upsert[k] = (t, seen)
        if upsert:
            to_time = time_converter(sql.dialect)
            items = sorted(upsert.items())
            for start in range(0, len(items), _BROWSER_CHUNK):
                chunk = items[start : start + _BROWSER_CHUNK]
                params: list[Any] = []
                for (site_id, visitor_key), (t, seen) in chunk:
                    params += (site_id, visitor_key, to_time(t), to_time(seen))
                found = conn.exec_driver_sql(sql.upsert_browsers(len(chunk)), tuple(params))
                for site_id, visitor_key, bv_id, contact_id in found:
                    key = (site_id, visitor_key)
                    self.browsers[key] = [bv_id, contact_id]
                    self.seen_written[bv_id] = upsert[key][1]
        return {(i.site_id, i.visitor_key): self.browsers[(i.site_id, i.visitor_key)]
                for i in batch}

    def _identify(
        self, conn: Connection, batch: list[PreparedHit],
        bv_ids: dict[tuple[int, str], list[int | None]], now: datetime,
    ) -> None:
        for item in batch:
            if item.identity is None:
                continue
            entry = bv_ids[(item.site_id, item.visitor_key)]
            contact_id = get_or_create_contact(conn, item.identity, now)
            if entry[1] != contact_id:
                assert entry[0] is not None
                link_browser(conn, entry[0], contact_id, self.decay)
                entry[1] = contact_id

    def _organisation_ids(
        self, conn: Connection, batch: list[PreparedHit], now: datetime
    ) -> tuple[dict[str, tuple[int, bool]], bool]:
        """The batch's organisations (id, scored) by match key, and whether the batch
        created a Website Visitor."""
        created = False
        matches = {i.org.key: i.org for i in batch if i.org is not None}
        missing = [m for k, m in matches.items() if k not in self.orgs]
        if missing:
            ids = ensure_organisations(conn, missing, now)
            found = conn.execute(
                select(organisations.c.id, organisations.c.blocked, organisations.c.type,
                       organisations.c.created_at)
                .where(organisations.c.id.in_(set(ids.values())))
            ).all()
            blocked = {r.id: r.blocked for r in found}
            for key, org_id in ids.items():
                self.orgs[key] = (org_id, not blocked.get(org_id, False))
            # created by this batch (stamped with its time), and shown as a Website Visitor
            created = self.on_new_organisations is not None and any(
                r.created_at == now and r.type in WEBSITE_VISITOR_TYPES and not r.blocked
                for r in found)
        return {k: self.orgs[k] for k in matches}, created

    def flush_rejections(self, conn: Connection, now: datetime) -> None:
        if not self.rejections:
            return
        day = now.astimezone(UTC).date()
        conn.execute(_statements(conn.dialect.name).add_rejections,
                     [{"day": day, "site_id": s, "reason": r, "count": n}
                      for (s, r), n in self.rejections.items()])
        self.rejections.clear()
