"""The hub's side of a sync: read, find, create and write contacts and Website Visitors as
plain field dictionaries. Computed fields (score, band, last visit, permalink) are read-only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, func, insert, select, update

from leadbridge.config import Settings
from leadbridge.identify.organisations import is_website_visitor
from leadbridge.scoring.decay import Bands, Decay
from leadbridge.store.tables import contacts, object_links, organisations


@dataclass(frozen=True, slots=True)
class HubRecord:
    id: str
    values: dict[str, Any]
    updated_at: datetime | None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class HubObjects:
    """One hub object type; subclasses name the table and the fields."""

    name: str
    table: Table
    writable: tuple[str, ...]
    computed: tuple[str, ...]
    extra_columns: tuple[str, ...] = ()  # read to compute the computed fields

    def __init__(self, settings: Settings, decay: Decay, now: datetime) -> None:
        self.settings = settings
        self.decay = decay
        self.now = now
        self._band = Bands(settings.scoring.bands)
        self._factor = decay.current(1.0, now)  # score = weight * factor, for every row

    @property
    def fields(self) -> tuple[str, ...]:
        return self.writable + self.computed

    def _where(self) -> Any:
        return True

    def _columns(self) -> list[Any]:
        names = ("id", "updated_at", "score_weight", *self.writable, *self.extra_columns)
        return [self.table.c[n] for n in names]

    def _values(self, row: Any) -> dict[str, Any]:
        values = {f: getattr(row, f) for f in self.writable}
        score = row.score_weight * self._factor
        values["score"] = round(score)
        values["band"] = self._band(score)
        return values

    def read(self, conn: Connection, ids: Sequence[str]) -> dict[str, HubRecord]:
        found: dict[str, HubRecord] = {}
        for start in range(0, len(ids), 500):
            chunk = [int(i) for i in ids[start : start + 500]]
            for row in conn.execute(select(*self._columns())
                                    .where(self.table.c.id.in_(chunk))):
                found[str(row.id)] = HubRecord(str(row.id), self._values(row), row.updated_at)
        return found

    def scan(self, conn: Connection, since: datetime | None) -> Iterator[HubRecord]:
        """Records changed since `since` (all when None), in id order, streamed."""
        query = select(*self._columns()).where(self._where()).order_by(self.table.c.id)
        if since is not None:
            query = query.where(self.table.c.updated_at >= since)
        for row in conn.execution_options(yield_per=2000).execute(query):
            yield HubRecord(str(row.id), self._values(row), row.updated_at)

    def find(self, conn: Connection, match: Mapping[str, Any]) -> list[str]:
        """Ids whose fields equal `match` (case-insensitive for text), lowest id first."""
        query = select(self.table.c.id).where(self._where()).order_by(self.table.c.id)
        for field_name, value in match.items():
            column = self.table.c[field_name]
            if isinstance(value, str):
                query = query.where(column.ilike(value.replace("%", r"\%").replace("_", r"\_"),
                                                 escape="\\"))
            else:
                query = query.where(column == value)
        return [str(i) for i in conn.execute(query).scalars()]

    def linked_by_key(self, conn: Connection, connection_id: int, field_name: str,
                      keys: set[str]) -> dict[str, str]:
        """Lower-cased `field_name` value -> id, for records of this type already linked."""
        # two indexed lookups: lower(field) (an expression index), then the links by hub id
        column = func.lower(self.table.c[field_name])
        found: dict[str, str] = {}
        ordered = sorted(keys)
        for start in range(0, len(ordered), 500):
            rows = conn.execute(select(column, self.table.c.id)
                                .where(column.in_(ordered[start : start + 500]))).all()
            linked = set(conn.execute(select(object_links.c.hub_id).where(
                object_links.c.connection_id == connection_id,
                object_links.c.hub_object == self.name,
                object_links.c.hub_id.in_([str(r.id) for r in rows]))).scalars())
            for value, record_id in rows:
                if str(record_id) in linked:
                    found.setdefault(value, str(record_id))
        return found

    def write(self, conn: Connection, record_id: str, values: Mapping[str, Any]) -> None:
        clean = {k: v for k, v in values.items() if k in self.writable}
        if clean:
            conn.execute(update(self.table).where(self.table.c.id == int(record_id))
                         .values(**clean, updated_at=self.now))

    def create(self, conn: Connection, values: Mapping[str, Any]) -> str:
        raise NotImplementedError(f"{self.name} records are not created from a CRM")


class ContactObjects(HubObjects):
    name = "contact"
    table = contacts
    writable = ("email", "name", "external_id")
    computed = ("score", "band", "last_visit")
    extra_columns = ("last_seen_at",)

    def _values(self, row: Any) -> dict[str, Any]:
        values = super()._values(row)
        values["last_visit"] = _iso(row.last_seen_at)
        return values

    def create(self, conn: Connection, values: Mapping[str, Any]) -> str:
        clean = {k: v for k, v in values.items() if k in self.writable}
        new_id = conn.execute(insert(contacts).values(
            **clean, created_at=self.now, updated_at=self.now, hit_count=0, score_weight=0.0,
        ).returning(contacts.c.id)).scalar_one()
        return str(new_id)


class WebsiteVisitorObjects(HubObjects):
    name = "website_visitor"
    table = organisations
    writable = ("name", "domain", "phone", "website", "address", "industry", "employees",
                "owner")
    computed = ("score", "band", "last_visit", "permalink")
    extra_columns = ("last_visit_at", "permalink_token")

    def _where(self) -> Any:
        return is_website_visitor()

    def _values(self, row: Any) -> dict[str, Any]:
        values = super()._values(row)
        values["last_visit"] = _iso(row.last_visit_at)
        values["permalink"] = f"{self.settings.public_url}/p/{row.permalink_token}"
        return values

    def set_account(self, conn: Connection, record_id: str, account_id: str | None) -> None:
        """Remember the associated CRM account on the Website Visitor."""
        conn.execute(update(organisations).where(organisations.c.id == int(record_id))
                     .values(crm_account_id=account_id))


def hub_objects(name: str, settings: Settings, decay: Decay, now: datetime) -> HubObjects:
    kinds: dict[str, type[HubObjects]] = {"contact": ContactObjects,
                                          "website_visitor": WebsiteVisitorObjects}
    return kinds[name](settings, decay, now)
