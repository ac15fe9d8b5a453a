"""The BottleCRM connector: the connector contract spoken through `BottleCRMClient`.

BottleCRM has no modified time, no modified-since filter, no batch endpoint and a create
that answers no id, so this connector:

- reports every record of an object in each cycle (`modified_since=False`, `modified_at`
  None): the first page of a cycle reads the whole list once, later pages are served from
  that listing in id order, and the cursor (`after:<id>`) resumes by id in a new process
  without skipping a record. The last page's cursor is None: the next cycle starts over.
  The engine compares the values with the ones both sides last agreed on.
- applies one record per request (`batch_size` 1, the honest figure for budgets);
- creates through the client, which finds the new id by the object's unique natural key.

Leads, contacts and opportunities also offer the marketing fields of
`leadbridge.connectors.marketing` (visitor id, call reference, and the attributed channel,
source and campaign written back): BottleCRM has no custom fields, so they are lines of the
record's description (`marketing.py`), read on every report and rewritten in place on update.

Natural match keys (what `find` filters on): leads `email` then `title` (title is the one
BottleCRM keeps unique), contacts `email`, accounts `domain` then `name`, opportunities
`name`, tasks `title`. Text matches ignore case and surrounding space; a blank value never
matches.

Website Visitors (BottleCRM has no custom objects, see `visitorblock.py`): a Website Visitor
is paired with a BottleCRM *account*; the visitor's score, band, last visit and permalink
live in a marked block of the account's (and its contacts') `description`, offered as the
fields `website_visitor_score`, `website_visitor_band`, `website_visitor_last_visit` and
`website_visitor_permalink`; accounts also offer `domain` (their website's host). Website
Hits become completed, low-priority *tasks* attached to the account (`account`), one per hit,
titled with the page, the time and the hit id (task titles are unique in BottleCRM).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
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
    RateInfo,
    RemoteRecord,
    ReportPage,
    ReportRequest,
)
from leadbridge.connectors.bottlecrm.client import BottleCRMClient
from leadbridge.connectors.bottlecrm.errors import (
    BottleCRMAuthError,
    BottleCRMError,
    BottleCRMNotFoundError,
    BottleCRMRetriableError,
    BottleCRMValidationError,
)
from leadbridge.connectors.bottlecrm.marketing import read_fields, write_fields
from leadbridge.connectors.bottlecrm.objects import SHAPES, BottleCRMObject, ObjectShape, Record
from leadbridge.connectors.bottlecrm.visitorblock import (
    FIELDS as VISITOR_FIELDS,
)
from leadbridge.connectors.bottlecrm.visitorblock import (
    domain_of,
    read_block,
    write_block,
)
from leadbridge.connectors.marketing import MARKETING_FIELDS

_MATCH_KEYS: Mapping[BottleCRMObject, tuple[str, ...]] = {
    BottleCRMObject.LEADS: ("email", "title"),
    BottleCRMObject.CONTACTS: ("email",),
    BottleCRMObject.ACCOUNTS: ("domain", "name"),
    BottleCRMObject.OPPORTUNITIES: ("name",),
    BottleCRMObject.TASKS: ("title",),
}

# fields the connector offers beyond BottleCRM's own (kept in `description`, or derived)
_VIRTUAL: Mapping[BottleCRMObject, tuple[str, ...]] = {
    BottleCRMObject.ACCOUNTS: ("domain", *VISITOR_FIELDS),
    BottleCRMObject.CONTACTS: VISITOR_FIELDS,
}
# objects carrying the marketing fields as lines of their description
_WITH_MARKETING = (BottleCRMObject.LEADS, BottleCRMObject.CONTACTS,
                   BottleCRMObject.OPPORTUNITIES)

OBJECTS: Mapping[str, ObjectSpec] = {
    obj.value: ObjectSpec(
        name=obj.value,
        batch_size=1,
        fields=(*shape.writable, *shape.relations, *_VIRTUAL.get(obj, ()),
                *(MARKETING_FIELDS if obj in _WITH_MARKETING else ())),
        match_keys=_MATCH_KEYS[obj],
        required=shape.required,
        modified_since=False,
    )
    for obj, shape in SHAPES.items()
}


@dataclass(frozen=True)
class _Listing:
    """One cycle's reading of an object, in id order."""

    until: datetime
    ids: list[int]
    records: list[RemoteRecord]


class BottleCRMConnector:
    """BottleCRM's leads, contacts, accounts, opportunities and tasks for the sync engine.

    The client is the caller's: the connector neither opens nor closes it. `calls` counts
    the client's HTTP requests, logins and the look-ups a create or update needs included.
    """

    kind = "bottlecrm"
    objects: Mapping[str, ObjectSpec] = OBJECTS

    def __init__(self, client: BottleCRMClient) -> None:
        self.client = client
        self._listings: dict[str, _Listing] = {}

    def __repr__(self) -> str:
        return f"BottleCRMConnector({self.client!r})"

    @property
    def calls(self) -> int:
        return self.client.requests

    @property
    def rate_info(self) -> RateInfo | None:
        """The rate-limit headers of BottleCRM's last answer, if it sent any."""
        return self.client.rate_info

    def test(self) -> None:
        """Log in; a refused login is fatal, an unreachable server retriable."""
        with _as_connector_error():
            self.client.login()

    def report(self, request: ReportRequest) -> ReportPage:
        """A page of every record of the object, in id order (`until` cannot be honoured)."""
        spec = _spec(request.object)
        unknown = [name for name in request.fields if name not in spec.fields]
        if unknown:
            raise ConnectorError(f"BottleCRM {spec.name} have no field {', '.join(unknown)}; "
                                 "check the mapping.")
        if request.page_size < 1:
            raise ValueError("page_size must be at least 1")
        after = _parse_cursor(request.cursor)
        listing = self._listings.get(spec.name)
        if request.cursor is None or listing is None or listing.until != request.until:
            listing = self._read_all(spec.name, request.until)
            self._listings[spec.name] = listing
        start = bisect.bisect_right(listing.ids, after) if after is not None else 0
        page = listing.records[start : start + request.page_size]
        more = start + len(page) < len(listing.records)
        if not more:
            del self._listings[spec.name]
        return ReportPage(
            [_project(record, request.fields) for record in page],
            f"after:{page[-1].id}" if more else None,
            more=more,
        )

    def apply(self, order: Sequence[OrderItem]) -> list[ItemResult]:
        """Carry out each item with its own requests, answering per item, in order.

        Fatal connection failures (a refused login) raise ConnectorError; everything else
        is one item's outcome.
        """
        items = list(order)
        if not items:
            return []
        objects = {item.object for item in items}
        if len(objects) > 1:
            raise ValueError(f"an order holds one object, not {sorted(objects)}")
        spec = _spec(items[0].object)
        if len(items) > spec.batch_size:
            raise ValueError(f"an order of {len(items)} {spec.name} exceeds the batch size "
                             f"of {spec.batch_size}")
        return [self._carry_out(spec, item) for item in items]

    def find(self, object: str, match: Mapping[str, JSONValue]) -> list[RemoteRecord]:
        """Records whose match keys equal `match`, through BottleCRM's list filters."""
        spec = _spec(object)
        unknown = [key for key in match if key not in spec.match_keys]
        if unknown:
            raise ConnectorError(f"BottleCRM {spec.name} cannot be found by "
                                 f"{', '.join(unknown)}; match keys: "
                                 f"{', '.join(spec.match_keys)}.")
        if not match or any(_blank(value) for value in match.values()):
            return []
        shape = SHAPES[BottleCRMObject(spec.name)]
        # BottleCRM cannot filter on a derived field: those are compared after a listing
        filters = {key: str(value) for key, value in match.items()
                   if key not in _VIRTUAL.get(shape.name, ())}
        with _as_connector_error():
            listed = list(self.client.list(shape.name, filters=filters))
        found = [_remote(shape, record) for record in listed]
        return sorted(
            (record for record in found
             if all(_same(record.fields.get(k), v) for k, v in match.items())),
            key=lambda record: int(record.id),
        )

    # -- inside ---------------------------------------------------------------------------

    def _read_all(self, object: str, until: datetime) -> _Listing:
        shape = SHAPES[BottleCRMObject(object)]
        with _as_connector_error():
            listed = list(self.client.list(shape.name))
        records = sorted((_remote(shape, record) for record in listed),
                         key=lambda record: int(record.id))
        return _Listing(until, [int(record.id) for record in records], records)

    def _carry_out(self, spec: ObjectSpec, item: OrderItem) -> ItemResult:
        obj = BottleCRMObject(spec.name)
        unknown = [name for name in item.fields if name not in spec.fields]
        if unknown:
            return ItemResult(item.ref, Outcome.FAILED, reason="; ".join(
                f"{name}: BottleCRM {spec.name} have no such field" for name in unknown))
        try:
            item = self._with_description(obj, item)
            if item.operation is Operation.CREATE:
                new_id = self.client.create(obj, _outgoing(obj, item.fields, None))
                return ItemResult(item.ref, Outcome.CREATED, remote_id=str(new_id))
            record_id = _int_id(item.remote_id)
            if record_id is None:
                return ItemResult(item.ref, Outcome.NOT_FOUND,
                                  reason=f"BottleCRM has no {spec.name} {item.remote_id!r}.")
            if item.operation is Operation.DELETE:
                self.client.delete(obj, record_id)
                return ItemResult(item.ref, Outcome.DELETED, remote_id=str(record_id))
            if obj is BottleCRMObject.LEADS:
                return self._update_lead(item, record_id)
            if obj in _VIRTUAL and any(name in item.fields
                                       for name in (*_VIRTUAL[obj], "description")):
                current = self.client.get(obj, record_id)  # the block is rewritten whole
                body = {**SHAPES[obj].writable_fields(current),
                        **_outgoing(obj, item.fields, current)}
                self.client.update(obj, record_id, body, merge=False)
                return ItemResult(item.ref, Outcome.UPDATED, remote_id=str(record_id))
            self.client.update(obj, record_id, item.fields)
            return ItemResult(item.ref, Outcome.UPDATED, remote_id=str(record_id))
        except BottleCRMAuthError as exc:
            raise ConnectorError(str(exc), retriable=False) from exc
        except BottleCRMValidationError as exc:
            return ItemResult(item.ref, Outcome.FAILED, reason=str(exc))
        except BottleCRMNotFoundError as exc:
            return ItemResult(item.ref, Outcome.NOT_FOUND, reason=str(exc))
        except BottleCRMRetriableError as exc:
            return ItemResult(item.ref, Outcome.RETRY_LATER, reason=str(exc),
                              retry_after=exc.retry_after)
        except BottleCRMError as exc:
            return ItemResult(item.ref, Outcome.FAILED, reason=str(exc))

    def _with_description(self, obj: BottleCRMObject, item: OrderItem) -> OrderItem:
        """The item with its marketing fields written into the record's description."""
        marketing = {k: v for k, v in item.fields.items() if k in MARKETING_FIELDS}
        if not marketing or item.operation is Operation.DELETE:
            return item
        fields = {k: v for k, v in item.fields.items() if k not in MARKETING_FIELDS}
        description = fields.get("description")
        record_id = _int_id(item.remote_id)
        if "description" not in fields and item.operation is Operation.UPDATE and record_id:
            description = self.client.get(obj, record_id).get("description")
            if obj in _VIRTUAL:  # the Website Visitor block is rewritten after these lines
                description, _ = read_block(description)
        fields["description"] = write_fields(description, marketing)
        return replace(item, fields=fields)

    def _update_lead(self, item: OrderItem, record_id: int) -> ItemResult:
        """Update a lead, or answer REMAPPED with the account a converted lead became.

        A converted lead disappears from BottleCRM's lists; the account its conversion
        created (whose `lead` points back) is where the company lives now.
        """
        shape = SHAPES[BottleCRMObject.LEADS]
        current = self.client.get(shape.name, record_id)
        if current.get("status") == "converted":
            account = self._account_of(current)
            if account is not None:
                return ItemResult(item.ref, Outcome.REMAPPED, remote_id=str(account["id"]),
                                  remote_object=BottleCRMObject.ACCOUNTS.value,
                                  reason=f"BottleCRM lead {record_id} was converted to "
                                         f"account {account['id']}.")
        body = {**shape.writable_fields(current), **item.fields}
        self.client.update(shape.name, record_id, body, merge=False)
        return ItemResult(item.ref, Outcome.UPDATED, remote_id=str(record_id))

    def _account_of(self, lead: Record) -> Record | None:
        """The account whose `lead` is this lead: by its name first, else by reading all."""
        def made_from_lead(account: Record) -> bool:
            return bool((account.get("lead") or {}).get("id") == lead["id"])

        name = lead.get("account_name")
        named = self.client.find(BottleCRMObject.ACCOUNTS, name) if name else None
        if named is not None and made_from_lead(named):
            return named
        return next(filter(made_from_lead, self.client.list(BottleCRMObject.ACCOUNTS)), None)


if TYPE_CHECKING:
    def _is_a_connector(connector: BottleCRMConnector) -> Connector:
        return connector


@contextmanager
def _as_connector_error() -> Iterator[None]:
    """Client errors outside a record's answer: retriable ones back off, the rest are fatal."""
    try:
        yield
    except BottleCRMRetriableError as exc:
        raise ConnectorError(str(exc), retriable=True, retry_after=exc.retry_after) from exc
    except BottleCRMError as exc:
        raise ConnectorError(str(exc), retriable=False) from exc


def _spec(object: str) -> ObjectSpec:
    spec = OBJECTS.get(object)
    if spec is None:
        raise ConnectorError(f"BottleCRM has no object {object!r}; it has "
                             f"{', '.join(OBJECTS)}.")
    return spec


def _remote(shape: ObjectShape, record: Record) -> RemoteRecord:
    """A listed record in the connector's field names: the parameters a PUT takes, and the
    fields the connector derives (the Website Visitor block, an account's domain)."""
    fields: dict[str, JSONValue] = {}
    for param, path in shape.writable.items():
        value: JSONValue = record
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        fields[param] = value
    for param, (key, attribute) in shape.relations.items():
        fields[param] = [item[attribute] for item in record.get(key) or []
                         if isinstance(item, Mapping)]
    if shape.name in _WITH_MARKETING:
        fields.update(read_fields(record.get("description")))
    if shape.name in _VIRTUAL:
        fields["description"], block = read_block(fields.get("description"))
        fields.update(block)
    if shape.name is BottleCRMObject.ACCOUNTS:
        fields["domain"] = domain_of(fields.get("website"))
    return RemoteRecord(shape.name.value, str(record["id"]), fields)


def _outgoing(obj: BottleCRMObject, fields: Mapping[str, JSONValue],
              current: Record | None) -> dict[str, JSONValue]:
    """Connector fields as BottleCRM parameters: the Website Visitor block written into
    `description` (keeping the salesperson's text), a domain into `website`."""
    virtual = _VIRTUAL.get(obj, ())
    out = {name: value for name, value in fields.items() if name not in virtual}
    if obj is BottleCRMObject.ACCOUNTS and not _blank(fields.get("domain")):
        website = fields.get("website") or (current or {}).get("website")
        if _blank(fields.get("website")) and domain_of(website) != fields["domain"]:
            out["website"] = f"https://{fields['domain']}"
    if any(name in fields for name in (*VISITOR_FIELDS, "description")) and virtual:
        text, values = read_block((current or {}).get("description"))
        if "description" in fields:
            text = fields["description"]
        values.update({name: fields[name] for name in VISITOR_FIELDS if name in fields})
        out["description"] = write_block(text, values)
    return out


def _project(record: RemoteRecord, names: Sequence[str]) -> RemoteRecord:
    if not names:
        return record
    return RemoteRecord(record.object, record.id,
                        {name: record.fields.get(name) for name in names})


def _blank(value: JSONValue) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _same(found: JSONValue, wanted: JSONValue) -> bool:
    if isinstance(found, str) and isinstance(wanted, str):
        return found.strip().casefold() == wanted.strip().casefold()
    return str(found) == str(wanted) if found is not None else False


def _int_id(remote_id: str | None) -> int | None:
    try:
        return int(remote_id) if remote_id is not None else None
    except ValueError:
        return None


def _parse_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    prefix, _, number = cursor.partition(":")
    if prefix != "after" or not number.isdigit():
        raise ConnectorError(f"BottleCRM cannot resume from the cursor {cursor!r}; start the "
                             "object again from the beginning.")
    return int(number)
