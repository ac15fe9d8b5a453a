"""One sync cycle of one connection: pull each mapped object, then push it, in the order of
the mapping manual (an account before its contacts).

Pull reads the CRM's changes a page at a time; each page's hub writes, links and cursor are
committed together. A CRM record without a link is matched to a hub record by the match keys
(lowest hub id wins), so records that already exist on both sides are paired, not doubled.
Push sends hub changes (hub value differs from the value both sides last agreed on); a create
is first written as a pending link, so a crash between the CRM's answer and our commit is
resolved on the next run by looking the record up instead of creating it again. Values pulled
from the CRM become the agreed values, so they are never pushed back (echo suppression); the
hub-side field-change log gives "most recent wins" the time a hub field changed, and is
pruned at the end of each cycle (`changelog.py`).
A CRM record that names another hub record by its link field (an account carrying another
Website Visitor's permalink) is relinked to it (`designation.py`).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, insert, select, update
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from leadbridge.config import Settings
from leadbridge.connectors.base import (
    Connector,
    ConnectorError,
    ItemResult,
    ObjectSpec,
    Operation,
    OrderItem,
    Outcome,
    RemoteRecord,
    ReportRequest,
    rate_info_of,
)
from leadbridge.scoring.ruleset import load_decay
from leadbridge.store import field_changes
from leadbridge.store.db import writing
from leadbridge.store.tables import connections, sync_runs
from leadbridge.sync import changelog, cursors, designation, errorqueue, links
from leadbridge.sync.budget import ApiBudget, BudgetExhausted
from leadbridge.sync.hooks import CycleHook
from leadbridge.sync.hubobjects import HubObjects, HubRecord, hub_objects
from leadbridge.sync.judge import Sides, Verdict, is_blank, judge
from leadbridge.sync.mapping import MappingManual, ObjectMapping

T = TypeVar("T")
PAGE_SIZE = 2000
LONGEST_WAIT = 120.0  # seconds; a CRM asking to wait longer ends the cycle until then
BUDGET_OBJECT = "api_budget"  # the error queue's entry for a cycle stopped by the budget


@dataclass(frozen=True, slots=True)
class PlannedChange:
    direction: str  # push | pull
    object: str
    operation: str  # create, update, delete, link
    key: str  # hub id (push) or remote id (pull)
    why: str


@dataclass
class CycleReport:
    run_id: int | None
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    plan: list[PlannedChange] = field(default_factory=list)
    api_calls: int = 0
    failures: list[str] = field(default_factory=list)
    paused_until: datetime | None = None  # the API budget ran out: the cycle resumes then
    budget_message: str | None = None

    def count(self, stream: str, outcome: str, n: int = 1) -> None:
        self.counts.setdefault(stream, Counter())[outcome] += n

    @property
    def status(self) -> str:
        if not self.failures and self.paused_until is not None:
            return "budget_exhausted"
        if not self.failures:
            failed = sum(c["failed"] + c["retry_later"] for c in self.counts.values())
            return "partial" if failed else "ok"
        return "failed"


class SyncEngine:
    def __init__(self, db: Engine, settings: Settings, connection_id: int, connector: Connector,
                 manual: MappingManual, *, dry_run: bool = False, max_attempts: int = 5,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 budget: ApiBudget | None = None,
                 hooks: Sequence[CycleHook] = ()) -> None:
        self.db = db
        self.settings = settings
        self.connection_id = connection_id
        self.connector = connector
        self.manual = manual
        self.dry_run = dry_run
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.clock = clock
        self.budget = budget
        self.hooks = hooks
        self.name = ""  # the connection's name: the origin of the values it pulls

    # -- the cycle -----------------------------------------------------------------------

    def run(self) -> CycleReport:
        start = self.clock()
        calls_before = self.connector.calls
        report = CycleReport(run_id=None if self.dry_run else self._open_run(start))
        if not self.dry_run:
            with writing(self.db) as conn:
                errorqueue.dismiss_stale(conn, start)
            self._backfill_changed_mappings(start)
        with self.db.connect() as conn:
            decay = load_decay(conn, self.settings.scoring)
            self.name = conn.execute(select(connections.c.name).where(
                connections.c.id == self.connection_id)).scalar_one()
        for mapping in self.manual.objects:
            hub = hub_objects(mapping.hub, self.settings, decay, start, self.connection_id)
            spec = self.connector.objects.get(mapping.crm)
            if spec is None:
                report.failures.append(f"{mapping.crm}: the connector has no such object")
                continue
            try:
                self._resolve_pending(mapping, spec, report)  # a crash's loose ends first
                if mapping.pull:
                    self._pull(mapping, spec, hub, start, report)
                self._push(mapping, spec, hub, start, report)
                if not self.dry_run:  # the CRM answered again: its outage error is over
                    with writing(self.db) as conn:
                        errorqueue.resolve(conn, self.connection_id, "cycle", mapping.crm,
                                           ["*"])
            except BudgetExhausted as exc:
                self._pause(exc, report, start)
                break
            except ConnectorError as exc:
                report.failures.append(f"{mapping.hub} <-> {mapping.crm}: {exc}")
                if not self.dry_run:
                    with writing(self.db) as conn:
                        errorqueue.record(conn, self.connection_id, level="job",
                                          direction="cycle", object=mapping.crm,
                                          record_key="*", reason=str(exc), now=start,
                                          retriable=exc.retriable, retry_after=exc.retry_after)
        if not self.dry_run and not report.failures and report.paused_until is None:
            for hook in self.hooks:  # a CRM that failed, or a spent budget, is left alone
                try:
                    self._serve(hook, start, report)
                except BudgetExhausted as exc:
                    self._pause(exc, report, start)
                    break
        if report.paused_until is None and self.budget is not None and not self.dry_run:
            with writing(self.db) as conn:
                errorqueue.resolve(conn, self.connection_id, "cycle", BUDGET_OBJECT, ["*"])
        if not self.dry_run:
            for name in dict.fromkeys(m.hub for m in self.manual.objects):
                changelog.prune(self.db, name, start,
                                timedelta(days=self.settings.sync.change_log_days))
        report.api_calls = self.connector.calls - calls_before
        if report.run_id is not None:
            self._close_run(report)
        return report

    def _backfill_changed_mappings(self, now: datetime) -> None:
        """A mapping that changed (a field added, say) is applied to every record: its
        cursors start over, so the next pull and push consider everything."""
        with writing(self.db) as conn:
            for mapping in self.manual.objects:
                stream = f"manual:{mapping.hub}:{mapping.crm}"
                fingerprint = hashlib.sha256(mapping.model_dump_json().encode()).hexdigest()
                if cursors.load(conn, self.connection_id, stream) == fingerprint:
                    continue
                for reset in (f"pull:{mapping.crm}", f"push:{mapping.hub}"):
                    cursors.save(conn, self.connection_id, reset, None, now)
                cursors.save(conn, self.connection_id, stream, fingerprint, now)

    def _pause(self, exc: BudgetExhausted, report: CycleReport, now: datetime) -> None:
        """The budget ran out: stop the cycle here (cursors cover only what was done) and
        say when it resumes, in the run log and as a job-level entry of the error queue."""
        report.paused_until = exc.resumes_at
        report.budget_message = str(exc)
        if self.dry_run:
            return
        wait = max((exc.resumes_at - now).total_seconds(), 0.0)
        with writing(self.db) as conn:
            errorqueue.record(conn, self.connection_id, level="job", direction="cycle",
                              object=BUDGET_OBJECT, record_key="*", reason=str(exc), now=now,
                              retriable=True, retry_after=wait)

    def _metered(self, fn: Callable[..., T], args: tuple[Any, ...], *, retry: bool) -> T:
        """One connector call inside the budget: asked before, charged after (its requests,
        and what the CRM said about its limits). A `retry` stopped by the budget counts as
        sent: the first attempt may have reached the CRM."""
        if self.budget is None:
            return fn(*args)
        try:
            self.budget.check()
        except BudgetExhausted as exc:
            if not retry:
                raise
            raise BudgetExhausted(exc.reason, exc.resumes_at, sent=True) from None
        before = self.connector.calls
        try:
            result = fn(*args)
        except ConnectorError as exc:
            self.budget.spend(self.connector.calls - before,
                              exc.rate or rate_info_of(self.connector), refused=True)
            raise
        self.budget.spend(self.connector.calls - before, rate_info_of(self.connector))
        return result

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Call the connector, backing off on retriable errors (honouring Retry-After); a
        wait longer than `LONGEST_WAIT` ends the cycle until then instead."""
        try:
            return self._retrying(fn, *args)
        except ConnectorError as exc:
            if exc.retriable and exc.retry_after and exc.retry_after > LONGEST_WAIT:
                resumes = datetime.now(UTC) + timedelta(seconds=exc.retry_after)
                raise BudgetExhausted(f"the CRM asked to wait {exc.retry_after:g} s ({exc})",
                                      resumes, sent=True) from exc
            raise

    def _retrying(self, fn: Callable[..., T], *args: Any) -> T:
        def wait(state: Any) -> float:
            exc = state.outcome.exception() if state.outcome else None
            base: float = wait_exponential_jitter(initial=1, max=60)(state)
            after = getattr(exc, "retry_after", None)
            return max(base, float(after)) if after else base

        def worth_waiting(e: BaseException) -> bool:
            return (isinstance(e, ConnectorError) and e.retriable
                    and (e.retry_after or 0) <= LONGEST_WAIT)

        for attempt in Retrying(
            retry=retry_if_exception(worth_waiting),
            stop=stop_after_attempt(self.max_attempts), wait=wait, sleep=self.sleep,
            reraise=True,
        ):
            with attempt:
                return self._metered(fn, args, retry=attempt.retry_state.attempt_number > 1)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- pull: CRM -> hub ------------------------------------------------------------------

    def _pull(self, m: ObjectMapping, spec: ObjectSpec, hub: HubObjects, start: datetime,
              report: CycleReport) -> None:
        stream = f"pull:{m.crm}"
        with self.db.connect() as conn:
            cursor = cursors.load(conn, self.connection_id, stream)
            logged = field_changes.has_rows(conn, m.hub)  # else a first sync reads nothing
        crm_fields = tuple(f.crm for f in m.fields)
        while True:
            page = self._call(self.connector.report, ReportRequest(
                m.crm, cursor, start, PAGE_SIZE, crm_fields))
            with writing(self.db) as conn:
                # one query each for the page's links and their hub records, not per record
                known = links.by_remote(conn, self.connection_id, m.crm,
                                        [r.id for r in page.records])
                current = hub.read(conn, [link.hub_id for link in known.values()])
                times = (changelog.page_times(conn, m.hub, list(current), self.name)
                         if logged else {})
                for record in page.records:
                    self._pull_record(conn, m, hub, record, known, current, times, start,
                                      report)
                if self.dry_run:
                    conn.rollback()
                else:
                    cursors.save(conn, self.connection_id, stream, page.cursor, start)
            cursor = page.cursor
            if not page.more:
                return

    def _pull_record(self, conn: Connection, m: ObjectMapping, hub: HubObjects,
                     record: RemoteRecord, known: dict[str, links.Link],
                     read: dict[str, HubRecord], times: Mapping[str, changelog.FieldTimes],
                     now: datetime, report: CycleReport) -> None:
        """`known`: the page's links by remote id (a relink drops the ones it removes);
        `times`: when the hub's fields of the page's linked records last changed."""
        stream = f"pull:{m.crm}"
        link = known.get(record.id)
        if record.deleted:
            if link is not None:
                self._note(report, "pull", m.crm, "unlink", record.id, "deleted in the CRM")
                if not self.dry_run:
                    links.tombstone(conn, link, now)
                    hub.linked(conn, m, link.hub_id, None)
                report.count(stream, "deleted_in_crm")
            return
        target = designation.target(conn, self.connection_id, m, hub, record, link)
        if target is not None:  # a person pointed this CRM record at another hub record
            self._note(report, "pull", m.crm, "relink", record.id, f"names hub {target}")
            report.count(stream, "relinked")
            if not self.dry_run:
                for released in designation.release(conn, self.connection_id, m, hub, link,
                                                    target):
                    known.pop(released, None)
            link = links.Link(0, m.hub, target, m.crm, record.id, {})
        linked_before = link is not None and link.id != 0
        if link is None:
            hub_id, twin = self._match(conn, m, hub, record)
            if twin is not None:  # the hub's match is linked to another CRM record already
                report.count(stream, "duplicate_in_crm")
                if not self.dry_run:
                    errorqueue.record(
                        conn, self.connection_id, level="record", direction="pull",
                        object=m.crm, record_key=record.id, now=now, retriable=False,
                        reason=f"same {', '.join(m.match)} as {m.crm} record {twin.remote_id}, "
                               f"which is hub {m.hub} {twin.hub_id}; merge them in the CRM")
                return
            if hub_id is None:
                if not m.create_in_hub:
                    report.count(stream, "unmatched")
                    return
                values = {f.hub: record.fields.get(f.crm) for f in m.fields if f.pulls}
                self._note(report, "pull", m.crm, "create", record.id, "new in the CRM")
                hub_id = hub.create(conn, values)
                report.count(stream, "created")
            # a record deleted in the CRM earlier may come back under a new id: reuse its link
            gone = links.by_hub(conn, self.connection_id, m.hub, [hub_id]).get(hub_id)
            link = links.Link(gone.id if gone else 0, m.hub, hub_id, m.crm, record.id, {})
            self._note(report, "pull", m.crm, "link", record.id, f"matches hub {hub_id}")
        current = read.get(link.hub_id) if linked_before else None
        if current is None:
            current = hub.read(conn, [link.hub_id]).get(link.hub_id)
        if current is None:  # the hub record is gone: forget the pair
            if linked_before and not self.dry_run:
                links.remove(conn, link.id)
            return
        agreed = dict(link.values)
        to_hub: dict[str, Any] = {}
        logged = times.get(link.hub_id) if linked_before else None
        for f in m.fields:
            crm_value = record.fields.get(f.crm)
            hub_value = current.values.get(f.hub)
            hub_time = changelog.hub_time(logged, f.hub, link.last_synced_at, current.updated_at)
            verdict = judge(f, Sides(hub_value, crm_value, agreed.get(f.crm), hub_time,
                                     record.field_times.get(f.crm) or record.modified_at,
                                     linked_before))
            if verdict == Verdict.PULL and f.hub in hub.writable:
                to_hub[f.hub] = crm_value
                agreed[f.crm] = crm_value
            elif verdict == Verdict.KEEP and hub_value == crm_value:
                agreed[f.crm] = crm_value
            elif not linked_before and verdict != Verdict.PULL:
                agreed.setdefault(f.crm, crm_value)  # the CRM's value as found; push decides
        if to_hub:
            self._note(report, "pull", m.crm, "update", record.id,
                       f"hub {link.hub_id} takes {sorted(to_hub)}")
            report.count(stream, "updated")
        if self.dry_run:
            return
        hub.write(conn, link.hub_id, to_hub, origin=self.name)
        hub.linked(conn, m, link.hub_id, record.id)
        if linked_before or link.id:
            links.settle(conn, link.id, record.id, agreed, now)
        else:
            links.add(conn, self.connection_id, m.hub, link.hub_id, m.crm, record.id, agreed,
                      now)
            report.count(stream, "linked")

    def _match(self, conn: Connection, m: ObjectMapping, hub: HubObjects,
               record: RemoteRecord) -> tuple[str | None, links.Link | None]:
        """The hub record with the same value of the first match key that finds one (keys
        in the manual's order: domain, then name), lowest id first, that is not linked to a
        live CRM record; else, when all its matches are linked, the link of the first one."""
        candidates: list[str] = []
        for key in m.match:
            value = record.fields.get(m.crm_field(key))
            if not is_blank(value):
                candidates = hub.find(conn, {key: value})
                if candidates:
                    break
        existing = links.by_hub(conn, self.connection_id, m.hub, candidates)
        taken = {k: v for k, v in existing.items() if not v.deleted}
        free = next((c for c in candidates if c not in taken), None)
        if free is None and candidates:
            return None, taken[candidates[0]]
        return free, None

    # -- push: hub -> CRM ------------------------------------------------------------------

    def _push(self, m: ObjectMapping, spec: ObjectSpec, hub: HubObjects, start: datetime,
              report: CycleReport) -> None:
        stream = f"push:{m.hub}"
        with self.db.connect() as conn:
            raw = cursors.load(conn, self.connection_id, stream)
            since = datetime.fromisoformat(raw) if raw else None
            due = set(errorqueue.due(conn, self.connection_id, "push", m.hub, start))
            held = errorqueue.waiting(conn, self.connection_id, "push", m.hub) - due
        for chunk in self._candidates(hub, since, due):
            self._push_chunk(m, spec, hub, [r for r in chunk if r.id not in held], start, report)
        if not self.dry_run and not report.failures:
            with writing(self.db) as conn:
                cursors.save(conn, self.connection_id, stream, start.isoformat(), start)

    def _candidates(self, hub: HubObjects, since: datetime | None,
                    due: set[str]) -> Iterator[list[HubRecord]]:
        """Records due for a retry first, then those changed since the cursor, streamed in
        chunks (memory stays flat however many there are)."""
        with self.db.connect() as conn:
            chunk: list[HubRecord] = list(hub.read(conn, sorted(due)).values())
            for record in hub.scan(conn, since):
                if record.id in due:
                    continue
                chunk.append(record)
                if len(chunk) >= PAGE_SIZE:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk

    def _push_chunk(self, m: ObjectMapping, spec: ObjectSpec, hub: HubObjects,
                    records: Sequence[HubRecord], now: datetime, report: CycleReport) -> None:
        stream = f"push:{m.hub}"
        with self.db.connect() as conn:
            known = links.by_hub(conn, self.connection_id, m.hub, [r.id for r in records])
        creates: list[tuple[HubRecord, dict[str, Any]]] = []
        updates: list[tuple[links.Link, dict[str, Any], dict[str, Any]]] = []
        claimed: dict[tuple[Any, ...], str] = {}
        pushed = [f for f in m.fields if f.pushes]
        for record in records:
            link = known.get(record.id)
            if link is not None and (link.pending or link.deleted):
                continue
            if link is None:
                if not m.create_in_crm:
                    continue
                values = {f.crm: record.values[f.hub] for f in pushed
                          if not is_blank(record.values.get(f.hub))}
                key = tuple(str(record.values.get(k) or "").lower() for k in m.match)
                if m.match and key in claimed:  # the same person twice in one batch
                    self._fail(report, stream, m.hub, record.id, now, retriable=False,
                               reason=f"same {', '.join(m.match)} as hub record "
                                      f"{claimed[key]}; merge them")
                    continue
                claimed[key] = record.id
                missing = [f for f in spec.required if is_blank(values.get(f))
                           and f not in m.constants]
                if missing:
                    self._fail(report, stream, m.hub, record.id, now, retriable=False,
                               reason=f"{spec.name} needs {', '.join(missing)}")
                    continue
                creates.append((record, {**m.constants, **values}))
                self._note(report, "push", m.hub, "create", record.id, "not in the CRM yet")
                continue
            changed: dict[str, Any] = {}
            for f in pushed:
                value = record.values.get(f.hub)
                agreed = link.values.get(f.crm)
                verdict = judge(f, Sides(value, agreed, agreed, record.updated_at, None, True))
                if verdict == Verdict.PUSH:
                    changed[f.crm] = value
            if changed:
                updates.append((link, changed, {**link.values, **changed}))
                self._note(report, "push", m.hub, "update", record.id,
                           f"hub changed {sorted(changed)}")
        creates = self._drop_twins_of_linked(m, hub, creates, now, report)
        if self.dry_run:
            report.count(stream, "planned_create", len(creates))
            report.count(stream, "planned_update", len(updates))
            return
        self._send_creates(m, spec, hub, creates, now, report)
        self._send_updates(m, spec, hub, updates, now, report)

    def _drop_twins_of_linked(self, m: ObjectMapping, hub: HubObjects,
                              creates: list[tuple[HubRecord, dict[str, Any]]], now: datetime,
                              report: CycleReport) -> list[tuple[HubRecord, dict[str, Any]]]:
        """A record whose first match key equals (ignoring case) that of a hub record already
        linked to the CRM is the same person: report it for merging, do not create it."""
        if not creates or not m.match:
            return creates
        key = m.match[0]
        wanted = {str(r.values.get(key) or "").lower() for r, _ in creates} - {""}
        with self.db.connect() as conn:
            linked = hub.linked_by_key(conn, self.connection_id, key, wanted)
        kept = []
        for record, values in creates:
            twin = linked.get(str(record.values.get(key) or "").lower())
            if twin is not None and twin != record.id:
                self._fail(report, f"push:{m.hub}", m.hub, record.id, now, retriable=False,
                           reason=f"same {key} as hub record {twin}, which is already in the "
                                  "CRM; merge them")
                continue
            kept.append((record, values))
        return kept

    def _send_creates(self, m: ObjectMapping, spec: ObjectSpec, hub: HubObjects,
                      creates: list[tuple[HubRecord, dict[str, Any]]], now: datetime,
                      report: CycleReport) -> None:
        if not creates:
            return
        # intents for the whole chunk first: a crash anywhere below cannot cause a duplicate
        with writing(self.db) as conn:
            links.add_intents(conn, self.connection_id, m.hub, m.crm,
                              [(record.id, values) for record, values in creates])
        answered: list[tuple[tuple[HubRecord, dict[str, Any]], ItemResult]] = []
        try:
            for start in range(0, len(creates), spec.batch_size):
                batch = creates[start : start + spec.batch_size]
                order = [OrderItem(record.id, m.crm, Operation.CREATE, None, values)
                         for record, values in batch]
                answered.extend(zip(batch, self._apply(order), strict=True))
        except BudgetExhausted as exc:
            # creates never sent need no look-up next time: drop their intents
            unsent = creates[len(answered) + (spec.batch_size if exc.sent else 0):]
            with writing(self.db) as conn:
                for record, _ in unsent:
                    links.remove_intent(conn, self.connection_id, m.hub, record.id)
            raise
        finally:  # record what was answered, even when a later batch failed
            self._settle_creates(m, hub, answered, now, report)

    def _settle_creates(self, m: ObjectMapping, hub: HubObjects,
                        answered: list[tuple[tuple[HubRecord, dict[str, Any]], ItemResult]],
                        now: datetime, report: CycleReport) -> None:
        stream = f"push:{m.hub}"
        if answered:
            with writing(self.db) as conn:
                done: list[str] = []
                confirmed: list[tuple[str, str]] = []
                for (record, _), result in answered:
                    if result.outcome == Outcome.CREATED and result.remote_id:
                        confirmed.append((record.id, result.remote_id))
                        hub.linked(conn, m, record.id, result.remote_id)
                        done.append(record.id)
                    else:
                        links.remove_intent(conn, self.connection_id, m.hub, record.id)
                        self._record_failure(conn, report, stream, m.hub, record.id, result, now)
                links.confirm_intents(conn, self.connection_id, m.hub, confirmed, now)
                report.count(stream, "created", len(done))
                errorqueue.resolve(conn, self.connection_id, "push", m.hub, done)

    def _send_updates(self, m: ObjectMapping, spec: ObjectSpec, hub: HubObjects,
                      updates: list[tuple[links.Link, dict[str, Any], dict[str, Any]]],
                      now: datetime, report: CycleReport) -> None:
        stream = f"push:{m.hub}"
        for start in range(0, len(updates), spec.batch_size):
            batch = updates[start : start + spec.batch_size]
            order = [OrderItem(link.hub_id, m.crm, Operation.UPDATE, link.remote_id, changed)
                     for link, changed, _ in batch]
            results = self._apply(order)
            with writing(self.db) as conn:
                done: list[str] = []
                settled: list[tuple[int, str, Mapping[str, Any]]] = []
                for (link, _, agreed), result in zip(batch, results, strict=True):
                    if result.outcome == Outcome.UPDATED:
                        settled.append((link.id, link.remote_id, agreed))
                        done.append(link.hub_id)
                        report.count(stream, "updated")
                    elif result.outcome == Outcome.REMAPPED and result.remote_id:
                        links.remove(conn, link.id)
                        hub.linked(conn, m, link.hub_id, None)
                        report.count(stream, "remapped")
                    elif result.outcome == Outcome.NOT_FOUND:
                        links.tombstone(conn, link, now)  # deleted in the CRM: stays deleted
                        hub.linked(conn, m, link.hub_id, None)
                        report.count(stream, "deleted_in_crm")
                    else:
                        self._record_failure(conn, report, stream, m.hub, link.hub_id, result,
                                             now)
                links.settle_many(conn, settled, now)
                errorqueue.resolve(conn, self.connection_id, "push", m.hub, done)

    def _apply(self, order: list[OrderItem]) -> list[ItemResult]:
        results = self._call(self.connector.apply, order)
        if [r.ref for r in results] != [o.ref for o in order]:
            raise ConnectorError("the connector answered a different set of records than it "
                                 "was sent; nothing from this batch is trusted")
        return results

    def _resolve_pending(self, m: ObjectMapping, spec: ObjectSpec, report: CycleReport) -> None:
        """Creates whose answer was never recorded: adopt the CRM record if it exists."""
        with self.db.connect() as conn:
            waiting = links.pending(conn, self.connection_id, m.hub)
        for link in waiting:
            match = {m.crm_field(k): link.values.get(m.crm_field(k)) for k in m.match}
            found = self._call(self.connector.find, m.crm, match) if match else []
            if self.dry_run:
                continue
            with writing(self.db) as conn:
                if found:
                    chosen = min(found, key=lambda r: (len(r.id), r.id))
                    links.settle(conn, link.id, chosen.id, link.values, self.clock())
                    report.count(f"push:{m.hub}", "recovered")
                else:
                    links.remove(conn, link.id)  # never reached the CRM: create again

    # -- hooks: work beside the mapping manual (sync/hooks.py) ---------------------------

    def _serve(self, hook: CycleHook, start: datetime, report: CycleReport) -> None:
        """Read the hook's objects like a pull, then send its updates like a push."""
        try:
            for obj, fields in hook.watched(self.connector.objects).items():
                stream = f"{hook.name}:{obj}"
                with self.db.connect() as conn:
                    cursor = cursors.load(conn, self.connection_id, stream)
                more = True
                while more:
                    page = self._call(self.connector.report,
                                      ReportRequest(obj, cursor, start, PAGE_SIZE, fields))
                    with writing(self.db) as conn:
                        hook.on_records(conn, self.connection_id, page.records, start)
                        cursors.save(conn, self.connection_id, stream, page.cursor, start)
                    report.count(stream, "read", len(page.records))
                    cursor, more = page.cursor, page.more
            with writing(self.db) as conn:
                updates = [u for u in hook.updates(conn, self.connection_id)
                           if u.object in self.connector.objects]
            for obj in dict.fromkeys(u.object for u in updates):
                todo = [u for u in updates if u.object == obj]
                size = self.connector.objects[obj].batch_size
                for at in range(0, len(todo), size):
                    order = todo[at : at + size]
                    results = self._apply(order)
                    with writing(self.db) as conn:
                        hook.on_results(conn, self.connection_id, order, results, start)
                    for result in results:
                        report.count(f"{hook.name}:{obj}", result.outcome.value)
        except ConnectorError as exc:
            report.failures.append(f"{hook.name}: {exc}")

    # -- bookkeeping ---------------------------------------------------------------------

    def _record_failure(self, conn: Connection, report: CycleReport, stream: str,
                        hub_object: str, key: str, result: ItemResult, now: datetime) -> None:
        retriable = result.outcome == Outcome.RETRY_LATER
        report.count(stream, "retry_later" if retriable else "failed")
        errorqueue.record(conn, self.connection_id, level="record", direction="push",
                          object=hub_object, record_key=key, now=now, retriable=retriable,
                          reason=result.reason or result.outcome.value,
                          retry_after=result.retry_after)

    def _fail(self, report: CycleReport, stream: str, hub_object: str, key: str,
              now: datetime, *, retriable: bool, reason: str) -> None:
        report.count(stream, "failed")
        self._note(report, "push", hub_object, "skip", key, reason)
        if self.dry_run:
            return
        with writing(self.db) as conn:
            errorqueue.record(conn, self.connection_id, level="record", direction="push",
                              object=hub_object, record_key=key, now=now, retriable=retriable,
                              reason=reason)

    def _note(self, report: CycleReport, direction: str, obj: str, op: str, key: str,
              why: str) -> None:
        if self.dry_run:
            report.plan.append(PlannedChange(direction, obj, op, key, why))

    def _open_run(self, start: datetime) -> int:
        with writing(self.db) as conn:
            return int(conn.execute(insert(sync_runs).values(
                connection_id=self.connection_id, started_at=start, status="running",
                dry_run=False, counts={}, api_calls=0).returning(sync_runs.c.id)).scalar_one())

    def _close_run(self, report: CycleReport) -> None:
        with writing(self.db) as conn:
            conn.execute(update(sync_runs).where(sync_runs.c.id == report.run_id).values(
                finished_at=self.clock(), status=report.status, api_calls=report.api_calls,
                counts={k: dict(v) for k, v in report.counts.items()},
                message="; ".join([*report.failures, *filter(None, [report.budget_message])])
                or None))

