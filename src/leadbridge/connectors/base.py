"""The contract every CRM connector implements, and nothing more.

A connector speaks one CRM's protocol: it *reports* what changed on its side since a cursor,
a page at a time, and *applies* an order of creates, updates and deletes, answering per
record. It also *finds* records by match keys, so the engine can match before it creates.
The engine owns everything else (links, mappings, conflicts, cursors, batching, retries,
budgets, the run log). A connector never imports `leadbridge.store`.

Field values crossing this boundary are plain JSON values (str, int, float, bool, None,
lists and dicts of them), named with the CRM's own field names.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from leadbridge.connectors.ratelimits import RateInfo, RateWindow, parse_rate_headers

__all__ = [
    "Connector", "ConnectorError", "ItemResult", "JSONValue", "ObjectSpec", "Operation",
    "OrderItem", "Outcome", "RateInfo", "RateWindow", "RemoteRecord", "ReportPage",
    "ReportRequest", "ReportsRateLimits", "parse_rate_headers", "rate_info_of",
]

JSONValue = Any


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    """What a connector offers for one CRM object."""

    name: str  # the CRM's object name: "contacts", "accounts", "Lead", ...
    batch_size: int  # records per apply() call the CRM accepts in one request
    fields: tuple[str, ...]  # fields it can read and write
    match_keys: tuple[str, ...] = ()  # fields find() can match on, in tie-break order
    required: tuple[str, ...] = ()  # fields a create must carry
    can_delete: bool = True
    modified_since: bool = True  # False: report() reads everything and the engine compares


@dataclass(frozen=True, slots=True)
class RemoteRecord:
    object: str
    id: str
    fields: Mapping[str, JSONValue]
    modified_at: datetime | None = None  # the record's last change, when the CRM knows it
    field_times: Mapping[str, datetime] = field(default_factory=dict)
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class ReportRequest:
    object: str
    cursor: str | None  # opaque, as returned by the previous page; None: from the beginning
    until: datetime  # changes after this moment belong to the next cycle
    page_size: int
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReportPage:
    records: Sequence[RemoteRecord]
    cursor: str | None  # to resume after this page; the engine stores it with the data
    more: bool  # another page follows in this cycle


class Operation(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class OrderItem:
    ref: str  # the engine's key for this item (answers carry it back)
    object: str
    operation: Operation
    remote_id: str | None = None  # for update and delete
    fields: Mapping[str, JSONValue] = field(default_factory=dict)


class Outcome(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    NOT_FOUND = "not_found"  # the record is gone on the CRM side
    REMAPPED = "remapped"  # the CRM turned it into another record (e.g. a converted lead)
    RETRY_LATER = "retry_later"  # throttled or temporarily down: try this item again
    FAILED = "failed"  # refused for a reason retrying will not fix


@dataclass(frozen=True, slots=True)
class ItemResult:
    ref: str
    outcome: Outcome
    remote_id: str | None = None  # for created, updated, remapped
    remote_object: str | None = None  # for remapped
    reason: str | None = None  # for failed / retry_later, in words a person can act on
    retry_after: float | None = None  # seconds, when the CRM said so


@runtime_checkable
class Connector(Protocol):
    kind: str
    objects: Mapping[str, ObjectSpec]

    def test(self) -> None:
        """Raise ConnectorError with a clear reason if the CRM cannot be reached or used."""

    def report(self, request: ReportRequest) -> ReportPage: ...

    def apply(self, order: Sequence[OrderItem]) -> list[ItemResult]:
        """Carry out the order (at most `batch_size` items of one object); one answer each."""
        ...

    def find(self, object: str, match: Mapping[str, JSONValue]) -> list[RemoteRecord]:
        """Records whose match-key fields equal the given values (any order)."""
        ...

    @property
    def calls(self) -> int:
        """HTTP requests made so far (for budgets and the run log)."""
        ...


@runtime_checkable
class ReportsRateLimits(Protocol):
    """A connector that tells what the CRM said about its rate limits in its last answer
    (`parse_rate_headers` of that answer's headers; None before any). Optional: the
    engine's budget works on its own count without it."""

    @property
    def rate_info(self) -> RateInfo | None: ...


def rate_info_of(connector: object) -> RateInfo | None:
    """The connector's last rate information, if it reports any."""
    if isinstance(connector, ReportsRateLimits):
        return connector.rate_info
    return None


class ConnectorError(Exception):
    """A connector-level failure (not one record's); `retriable` says whether to back off;
    `rate` what the CRM said about its limits in the failed answer (a 429), if anything."""

    def __init__(self, message: str, *, retriable: bool = False,
                 retry_after: float | None = None, rate: RateInfo | None = None) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.retry_after = retry_after
        self.rate = rate
