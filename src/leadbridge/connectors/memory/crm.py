"""MemoryCRM: a CRM that lives in a dict, speaks the connector contract, and fails on request.

It is the engine's sparring partner (like the example integration of Mautic's sync
engine): every outcome of the contract can be provoked from a test, and every record's
modified time comes from a clock the test controls. Nothing here touches a network or disk.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from leadbridge.connectors.base import (
    Connector,
    ConnectorError,
    ItemResult,
    JSONValue,
    ObjectSpec,
    Operation,
    OrderItem,
    Outcome,
    RemoteRecord,
    ReportPage,
    ReportRequest,
)
from leadbridge.connectors.memory.clock import MemoryClock
from leadbridge.connectors.memory.objects import (
    CONVERTED_FIELDS,
    DEFAULT_BATCH_SIZE,
    default_objects,
    is_blank,
    problems,
    same_value,
)
from leadbridge.connectors.memory.records import (
    Refusal,
    StoredRecord,
    cursor_after,
    parse_cursor,
)
from leadbridge.connectors.ratelimits import RateInfo, RateWindow


class SimulatedCrash(RuntimeError):
    """Raised by `apply` after `crash_after(k)`: the process 'died' mid-batch."""


@dataclass(slots=True)
class _Quota:
    remaining: int
    limit: int | None
    reset_at: datetime | None


class MemoryCRM:
    """An in-memory CRM with accounts, contacts, leads, opportunities, tasks and Website
    Visitor and Website Hit records (see `objects.py`).

    Contract behaviour: `report` pages by the (modified time, id) cursor up to `until`, with
    soft-deleted records as `deleted=True`; `apply` refuses orders above `batch_size`
    (ValueError) and answers created / updated / deleted / not found (unknown or deleted
    id) / remapped (a converted lead) / failed (validation, `<field>: <reason>`);
    `find` matches match-key values case-insensitively and never on a blank value, and
    skips deleted records and converted leads. Each `test`, `report`, `apply` and `find`
    counts as one call (one request to a batch API), failed ones included.

    Knobs: `fail_next`, `refuse`, `crash_after`, `convert_lead`, `rate_limit`,
    `clear_failures`.
    Side doors (no call counted, no knob applied): `put`, `edit`, `remove`, `get` and
    `records`. `orders` keeps every order `apply` received, for assertions on batching.
    """

    kind = "memory"

    def __init__(
        self,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        clock: Callable[[], datetime] | None = None,
        field_times: bool = True,
        objects: Mapping[str, ObjectSpec] | None = None,
    ) -> None:
        """`clock` stamps every change (default: a `MemoryClock` ticking a second a read);
        `field_times=False` reports record times only; `objects` replaces the default specs.
        """
        self.objects: Mapping[str, ObjectSpec] = dict(objects or default_objects(batch_size))
        self.clock = clock or MemoryClock()
        self.orders: list[tuple[OrderItem, ...]] = []
        self._field_times = field_times
        self._rows: dict[str, dict[str, StoredRecord]] = {name: {} for name in self.objects}
        self._ids = itertools.count(1)
        self._calls = 0
        self._failures_left = 0
        self._failure = ConnectorError("")
        self._refusals: list[Refusal] = []
        self._crash: tuple[int, BaseException] | None = None
        self._quota: _Quota | None = None
        self._rate_info: RateInfo | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        counts = ", ".join(f"{name}={len(self.records[name])}" for name in self._rows)
        return f"MemoryCRM({counts}, calls={self._calls})"

    # -- the contract ---------------------------------------------------------------------

    @property
    def calls(self) -> int:
        return self._calls

    @property
    def rate_info(self) -> RateInfo | None:
        """What the last call's answer said about the CRM's limits (with `rate_limit`)."""
        return self._rate_info

    def test(self) -> None:
        with self._lock:
            self._enter()

    def report(self, request: ReportRequest) -> ReportPage:
        spec = self._spec(request.object)
        unknown = [name for name in request.fields if name not in spec.fields]
        if unknown:
            raise ConnectorError(f"The memory CRM's {spec.name} have no field "
                                 f"{', '.join(unknown)}; check the mapping.")
        if request.page_size < 1:
            raise ValueError("page_size must be at least 1")
        after = parse_cursor(request.cursor)
        with self._lock:
            self._enter()
            rows = sorted(
                (row for row in self._rows[spec.name].values()
                 if row.modified_at <= request.until and (after is None or row.position > after)),
                key=lambda row: row.position,
            )
            page = rows[: request.page_size]
            cursor = cursor_after(page[-1]) if page else request.cursor
            records = [self._record(spec.name, row, request.fields) for row in page]
            return ReportPage(records, cursor, more=len(rows) > len(page))

    def apply(self, order: Sequence[OrderItem]) -> list[ItemResult]:
        items = list(order)
        if not items:
            return []
        objects = {item.object for item in items}
        if len(objects) > 1:
            raise ValueError(f"an order holds one object, not {sorted(objects)}")
        spec = self._spec(items[0].object)
        if len(items) > spec.batch_size:
            raise ValueError(f"an order of {len(items)} {spec.name} exceeds the batch size "
                             f"of {spec.batch_size}")
        with self._lock:
            self._enter()
            self.orders.append(tuple(items))
            crash, self._crash = self._crash, None
            results = []
            for index, item in enumerate(items):
                if crash is not None and index >= crash[0]:
                    raise crash[1]
                results.append(self._carry_out(spec, item))
            if crash is not None:
                raise crash[1]
            return results

    def find(self, object: str, match: Mapping[str, JSONValue]) -> list[RemoteRecord]:
        spec = self._spec(object)
        unknown = [key for key in match if key not in spec.match_keys]
        if unknown:
            raise ConnectorError(f"The memory CRM cannot find {spec.name} by "
                                 f"{', '.join(unknown)}; its match keys are "
                                 f"{', '.join(spec.match_keys) or 'none'}.")
        with self._lock:
            self._enter()
            if not match or any(is_blank(value) for value in match.values()):
                return []
            return [
                self._record(spec.name, row, ())
                for row in sorted(self._rows[spec.name].values(), key=lambda row: row.id)
                if not row.deleted and row.converted_to is None
                and all(same_value(row.fields.get(k), v) for k, v in match.items())
            ]

    # -- knobs ----------------------------------------------------------------------------

    def fail_next(self, calls: int = 1, *, retry_after: float | None = 2.0,
                  retriable: bool = True, message: str | None = None) -> None:
        """Make the next `calls` contract calls raise ConnectorError (0 ends the outage).

        The default is a throttled or down CRM (`retriable`, HTTP 503 with Retry-After);
        `retriable=False` is one the engine must not retry (revoked credentials).
        """
        default = ("memory CRM answered 503 Service Unavailable (simulated outage)" if retriable
                   else "memory CRM answered 401: credentials revoked (simulated)")
        with self._lock:
            self._failures_left = calls
            self._failure = ConnectorError(message or default, retriable=retriable,
                                           retry_after=retry_after if retriable else None)

    def refuse(
        self,
        object: str,
        reason: str,
        /,
        *,
        ref: str | None = None,
        remote_id: str | None = None,
        outcome: Outcome = Outcome.FAILED,
        retry_after: float | None = None,
        times: int | None = None,
        **fields: JSONValue,
    ) -> None:
        """Answer `outcome` (FAILED or RETRY_LATER) with `reason` to matching order items.

        An item matches when every given criterion holds: its `ref`, its `remote_id`, and
        each of `fields` equal (case-insensitively) in the record as the item would leave
        it. `times` limits how often the refusal fires (None: until `clear_failures`).
        A FAILED reason should name the field, as a CRM's validation does ("email: ...").
        """
        if outcome not in (Outcome.FAILED, Outcome.RETRY_LATER):
            raise ValueError("refuse answers FAILED or RETRY_LATER; for the other outcomes "
                             "use remove (NOT_FOUND) or convert_lead (REMAPPED)")
        self._spec(object)
        with self._lock:
            self._refusals.append(Refusal(object, reason, outcome, retry_after, times, ref,
                                           remote_id, dict(fields)))

    def crash_after(self, items: int, error: BaseException | None = None) -> None:
        """Make the next `apply` carry out its first `items` items, then raise `error`.

        The CRM keeps what it stored and the caller gets no answers: a crash (or a lost
        connection) between the CRM's commit and the hub's. Default: `SimulatedCrash`.
        """
        with self._lock:
            self._crash = (items, error or SimulatedCrash(
                f"memory CRM: the process died after {items} item(s) of a batch (simulated)"))

    def convert_lead(self, lead_id: str, *, contact_id: str | None = None) -> str:
        """Convert a lead into a contact, as a salesperson would; return the contact's id.

        The contact is new (with the lead's person fields) unless `contact_id` names an
        existing one. The lead's status becomes `converted` (a change `report` shows); later
        updates and deletes of the lead answer REMAPPED with the contact.
        """
        with self._lock:
            lead = self._rows["leads"][lead_id]
            if contact_id is None:
                carried = {name: lead.fields[name] for name in CONVERTED_FIELDS
                           if name in lead.fields and name in self.objects["contacts"].fields}
                contact_id = self.put("contacts", **carried)
            elif contact_id not in self._rows["contacts"]:
                raise KeyError(f"no contact {contact_id}")
            lead.write({"status": "converted"}, self.clock())
            lead.converted_to = contact_id
            return contact_id

    def rate_limit(self, remaining: int | None, *, limit: int | None = None,
                   reset_at: datetime | None = None) -> None:
        """Give the CRM a quota of `remaining` calls (None lifts it), as a CRM with rate
        headers has: each call spends one and its answer reports what is left (`rate_info`,
        the window named "memory"); a call with nothing left is refused like an HTTP 429,
        with `retry_after` until `reset_at` when given."""
        with self._lock:
            self._rate_info = None
            self._quota = None if remaining is None else _Quota(remaining, limit, reset_at)

    def clear_failures(self) -> None:
        """Lift every injected failure: outages, refusals and a pending crash."""
        with self._lock:
            self._failures_left = 0
            self._refusals.clear()
            self._crash = None

    # -- side doors: what people do in the CRM itself -------------------------------------

    def put(self, object: str, /, *, id: str | None = None, **fields: JSONValue) -> str:
        """Store a new record directly (no validation, no call counted); return its id."""
        self._spec(object)
        with self._lock:
            record_id = id
            while record_id is None or (id is None and record_id in self._rows[object]):
                record_id = str(next(self._ids))
            if record_id in self._rows[object]:
                raise ValueError(f"{object} {record_id} exists already")
            now = self.clock()
            self._rows[object][record_id] = StoredRecord(record_id, dict(fields), now,
                                                 dict.fromkeys(fields, now))
            return record_id

    def edit(self, object: str, id: str, /, **changes: JSONValue) -> None:
        """Change a record directly; its modified time (and changed fields' times) move on."""
        with self._lock:
            self._rows[object][id].write(changes, self.clock())

    def remove(self, object: str, id: str, /, *, purge: bool = False) -> None:
        """Delete a record directly: soft (reported as deleted) or `purge` (gone for good)."""
        with self._lock:
            if purge:
                del self._rows[object][id]
                return
            row = self._rows[object][id]
            row.deleted = True
            row.modified_at = self.clock()

    def get(self, object: str, id: str) -> RemoteRecord | None:
        """One record as the CRM holds it (deleted ones too), or None if it never was."""
        with self._lock:
            row = self._rows[object].get(id)
            return self._record(object, row, ()) if row else None

    @property
    def records(self) -> dict[str, dict[str, dict[str, JSONValue]]]:
        """A copy of every live record: object → id → fields."""
        with self._lock:
            return {name: {row.id: dict(row.fields) for row in rows.values() if not row.deleted}
                    for name, rows in self._rows.items()}

    # -- inside ---------------------------------------------------------------------------

    def _enter(self) -> None:
        """Count a call, and fail it if an outage is under way or the quota is spent."""
        self._calls += 1
        quota = self._quota
        if quota is not None:
            now = datetime.now(UTC)
            refused = quota.remaining <= 0
            quota.remaining = max(quota.remaining - 1, 0)
            self._rate_info = RateInfo(now, (RateWindow("memory", quota.remaining, quota.limit,
                                                        quota.reset_at),))
            if refused:
                wait = (quota.reset_at - now).total_seconds() if quota.reset_at else None
                raise ConnectorError("memory CRM answered 429 Too Many Requests: no calls left "
                                     "(simulated rate limit)", retriable=True,
                                     retry_after=max(wait, 0.0) if wait is not None else None,
                                     rate=self._rate_info)
        if self._failures_left > 0:
            self._failures_left -= 1
            raise ConnectorError(str(self._failure), retriable=self._failure.retriable,
                                 retry_after=self._failure.retry_after)

    def _spec(self, object: str) -> ObjectSpec:
        spec = self.objects.get(object)
        if spec is None:
            raise ConnectorError(f"The memory CRM has no object {object!r}; it has "
                                 f"{', '.join(self.objects)}.")
        return spec

    def _carry_out(self, spec: ObjectSpec, item: OrderItem) -> ItemResult:
        rows = self._rows[spec.name]
        row = None
        if item.operation is not Operation.CREATE:
            row = rows.get(item.remote_id or "")
            if row is None or row.deleted:
                return ItemResult(item.ref, Outcome.NOT_FOUND,
                                  reason=f"{spec.name} {item.remote_id} does not exist")
            if row.converted_to is not None:
                return ItemResult(item.ref, Outcome.REMAPPED, remote_id=row.converted_to,
                                  remote_object="contacts",
                                  reason=f"lead {row.id} was converted")
        refused = self._refused(item, row)
        if refused is not None:
            return refused
        if item.operation is Operation.DELETE:
            assert row is not None
            if not spec.can_delete:
                return ItemResult(item.ref, Outcome.FAILED,
                                  reason=f"{spec.name} cannot be deleted")
            row.deleted = True
            row.modified_at = self.clock()
            return ItemResult(item.ref, Outcome.DELETED, remote_id=row.id)
        found = problems(spec, item.fields, creating=row is None)
        if found:
            return ItemResult(item.ref, Outcome.FAILED, reason="; ".join(found))
        if row is None:
            return ItemResult(item.ref, Outcome.CREATED,
                              remote_id=self.put(spec.name, **item.fields))
        row.write(item.fields, self.clock())
        return ItemResult(item.ref, Outcome.UPDATED, remote_id=row.id)

    def _refused(self, item: OrderItem, row: StoredRecord | None) -> ItemResult | None:
        for refusal in self._refusals:
            if refusal.matches(item, row):
                if refusal.times is not None:
                    refusal.times -= 1
                    if refusal.times <= 0:
                        self._refusals.remove(refusal)
                return ItemResult(item.ref, refusal.outcome, reason=refusal.reason,
                                  retry_after=refusal.retry_after)
        return None

    def _record(self, object: str, row: StoredRecord, names: Sequence[str]) -> RemoteRecord:
        wanted = names or tuple(row.fields)
        fields = {name: row.fields.get(name) for name in wanted}
        times = ({name: row.field_times[name] for name in wanted if name in row.field_times}
                 if self._field_times else {})
        return RemoteRecord(object, row.id, fields, modified_at=row.modified_at,
                            field_times=times, deleted=row.deleted)


if TYPE_CHECKING:
    def _is_a_connector(crm: MemoryCRM) -> Connector:
        return crm
