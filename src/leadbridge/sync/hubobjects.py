"""The hub's side of a sync: read, find, create and write contacts, Website Visitors and
Website Hits as plain field dictionaries. Computed fields (score, band, last visit, permalink,
and on contacts their Website Visitor's) are read-only.

Scores decay continuously, so a record is not "changed" every second: a Website Visitor (and
its contacts) is due for a push when it changed (a new hit moves its last visit and score, a
person edited it) or when decay alone moved its score into another band since the last push.
Between those moments the CRM keeps the score of the last push; the permalink page always
shows today's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    String,
    Table,
    and_,
    func,
    insert,
    or_,
    select,
    update,
)

from leadbridge.config import Settings
from leadbridge.identify.organisations import is_website_visitor
from leadbridge.scoring.decay import Bands, Decay
from leadbridge.store import field_changes
from leadbridge.store.bulk import driver_sql, in_list
from leadbridge.store.ids import floor_id
from leadbridge.store.tables import contacts, hits, object_links, organisations
from leadbridge.sync.mapping import ObjectMapping
from leadbridge.views.website_visitors import survivor_token

PERMALINK_PATH = "/p/"


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
    designating: tuple[str, ...] = ()  # fields by which a CRM record names its hub record
    extra_columns: tuple[str, ...] = ()  # read to compute the computed fields

    def __init__(self, settings: Settings, decay: Decay, now: datetime,
                 connection_id: int | None = None) -> None:
        self.settings = settings
        self.decay = decay
        self.now = now
        self.connection_id = connection_id
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

    def _select(self) -> Select[Any]:
        return select(*self._columns())

    def _changed_since(self, since: datetime) -> ColumnElement[bool]:
        return self.table.c.updated_at >= since

    def _key(self, record_id: str) -> Any:
        return int(record_id)

    def read(self, conn: Connection, ids: Sequence[str]) -> dict[str, HubRecord]:
        found: dict[str, HubRecord] = {}
        for start in range(0, len(ids), 500):
            chunk = [self._key(i) for i in ids[start : start + 500]]
            for row in conn.execute(self._select().where(self.table.c.id.in_(chunk))):
                found[str(row.id)] = HubRecord(str(row.id), self._values(row), row.updated_at)
        return found

    def scan(self, conn: Connection, since: datetime | None) -> Iterator[HubRecord]:
        """Records changed since `since` (all when None), in id order, streamed."""
        query = self._select().where(self._where()).order_by(self.table.c.id)
        if since is not None:
            query = query.where(self._changed_since(since))
        for row in conn.execution_options(yield_per=2000).execute(query):
            yield HubRecord(str(row.id), self._values(row), row.updated_at)

    def designated(self, conn: Connection, values: Mapping[str, Any]) -> str | None:
        """The hub record a CRM record names by its own link field (hub field names), if
        any: for a CRM account, the Website Visitor whose permalink it carries."""
        return None

    def linked(self, conn: Connection, mapping: ObjectMapping, record_id: str,
               remote_id: str | None) -> None:
        """The record was linked to CRM record `remote_id` (None: the link is gone)."""
        return None

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
        # straight to the driver: Core would render each chunk's IN list anew
        dialect = conn.dialect.name
        column = self.table.c[field_name].name
        found: dict[str, str] = {}
        ordered = sorted(keys)
        for start in range(0, len(ordered), 512):
            markers, params = in_list(ordered[start : start + 512], dialect)
            rows = conn.exec_driver_sql(driver_sql(
                f"SELECT lower({column}), id FROM {self.table.name} "
                f"WHERE lower({column}) IN ({markers})", dialect), params).all()
            if not rows:
                continue
            markers, params = in_list([str(r[1]) for r in rows], dialect)
            linked = {r[0] for r in conn.exec_driver_sql(driver_sql(
                "SELECT hub_id FROM object_links WHERE connection_id = ? AND hub_object = ? "
                f"AND hub_id IN ({markers})", dialect),
                (connection_id, self.name, *params))}
            for value, record_id in sorted(rows, key=lambda r: r[1]):
                if str(record_id) in linked:
                    found.setdefault(value, str(record_id))
        return found

    def write(self, conn: Connection, record_id: str, values: Mapping[str, Any], *,
              origin: str | None) -> None:
        """Change fields of one record and log the change; `origin` is the connection a
        pulled value came from (None: a person or the API)."""
        clean = {k: v for k, v in values.items() if k in self.writable}
        if clean:
            conn.execute(update(self.table).where(self.table.c.id == int(record_id))
                         .values(**clean, updated_at=self.now))
            field_changes.record(conn, self.name, record_id, clean, self.now, origin)

    def create(self, conn: Connection, values: Mapping[str, Any]) -> str:
        raise NotImplementedError(f"{self.name} records are not created from a CRM")


def visitor_changed(decay: Decay, bands: Bands, since: datetime,
                    now: datetime) -> ColumnElement[bool]:
    """Organisations changed since `since`, or whose decayed score crossed a band threshold
    between `since` and `now` (a weight w has score w*f; it crossed threshold t going down
    when t/f(since) <= w < t/f(now))."""
    at_since, at_now = decay.current(1.0, since), decay.current(1.0, now)
    crossed = [and_(organisations.c.score_weight >= threshold / at_since,
                    organisations.c.score_weight < threshold / at_now)
               for _, threshold in bands.ordered if threshold > 0 and at_now > 0]
    return or_(organisations.c.updated_at >= since, *crossed)


def _permalink(settings: Settings, token: str | None) -> str | None:
    return None if token is None else f"{settings.public_url}{PERMALINK_PATH}{token}"


def permalink_token(value: Any) -> str | None:
    """The token of a permalink as a person may paste it (with or without the hub's address,
    a trailing slash or a query string)."""
    if not isinstance(value, str) or PERMALINK_PATH not in value:
        return None
    token = value.rsplit(PERMALINK_PATH, 1)[1].split("?", 1)[0].split("#", 1)[0].strip("/ ")
    return token or None


class ContactObjects(HubObjects):
    """Contacts, with the score, last visit and permalink of their Website Visitor (the
    organisation they were seen from), so salespeople see both on the CRM contact."""

    name = "contact"
    table = contacts
    writable = field_changes.TRACKED_FIELDS["contact"]
    computed = ("score", "band", "last_visit", "website_visitor_score",
                "website_visitor_band", "website_visitor_last_visit",
                "website_visitor_permalink")
    extra_columns = ("last_seen_at",)

    def _select(self) -> Select[Any]:
        visitor = organisations
        return (select(*self._columns(),
                       visitor.c.score_weight.label("visitor_weight"),
                       visitor.c.last_visit_at.label("visitor_last_visit"),
                       visitor.c.permalink_token.label("visitor_token"))
                .select_from(contacts.outerjoin(visitor, and_(
                    visitor.c.id == contacts.c.organisation_id, is_website_visitor()))))

    def _changed_since(self, since: datetime) -> ColumnElement[bool]:
        return or_(contacts.c.updated_at >= since,
                   and_(organisations.c.id.is_not(None),
                        visitor_changed(self.decay, self._band, since, self.now)))

    def _values(self, row: Any) -> dict[str, Any]:
        values = super()._values(row)
        values["last_visit"] = _iso(row.last_seen_at)
        visitor = row.visitor_token is not None
        score = (row.visitor_weight or 0.0) * self._factor
        values["website_visitor_score"] = round(score) if visitor else None
        values["website_visitor_band"] = self._band(score) if visitor else None
        values["website_visitor_last_visit"] = _iso(row.visitor_last_visit)
        values["website_visitor_permalink"] = _permalink(self.settings, row.visitor_token)
        return values

    def create(self, conn: Connection, values: Mapping[str, Any]) -> str:
        clean = {k: v for k, v in values.items() if k in self.writable}
        new_id = conn.execute(insert(contacts).values(
            **clean, created_at=self.now, updated_at=self.now, hit_count=0, score_weight=0.0,
        ).returning(contacts.c.id)).scalar_one()
        return str(new_id)


class WebsiteVisitorObjects(HubObjects):
    """Website Visitors (organisations that are not ISPs, blocked or merged).

    Unless the mapping maps `crm_account_id` to a field of the CRM record (a CRM with a
    Website Visitor entity of its own, which has an account lookup), the CRM record a
    Website Visitor is linked to *is* its associated account, and `crm_account_id` follows
    the link. A CRM account names its Website Visitor by the permalink it carries.
    """

    name = "website_visitor"
    table = organisations
    writable = field_changes.TRACKED_FIELDS["website_visitor"]
    computed = ("score", "band", "last_visit", "permalink")
    extra_columns = ("last_visit_at", "permalink_token")
    designating = ("permalink",)

    def _where(self) -> Any:
        return is_website_visitor()

    def _changed_since(self, since: datetime) -> ColumnElement[bool]:
        return visitor_changed(self.decay, self._band, since, self.now)

    def _values(self, row: Any) -> dict[str, Any]:
        values = super()._values(row)
        values["last_visit"] = _iso(row.last_visit_at)
        values["permalink"] = _permalink(self.settings, row.permalink_token)
        return values

    def designated(self, conn: Connection, values: Mapping[str, Any]) -> str | None:
        token = permalink_token(values.get("permalink"))
        if token is None:
            return None
        survivor = survivor_token(conn, token) or token  # a merged visitor's old link
        found = conn.execute(select(organisations.c.id).where(
            organisations.c.permalink_token == survivor, is_website_visitor())).scalar()
        return None if found is None else str(found)

    def set_account(self, conn: Connection, record_id: str, account_id: str | None) -> None:
        """Remember the associated CRM account on the Website Visitor (its `updated_at`
        moves, so the account is updated on the next push). Not logged as a field change:
        it follows the link, which only the engine sets."""
        column = organisations.c.crm_account_id
        changed = column.is_not(None) if account_id is None else or_(
            column.is_(None), column != account_id)
        conn.execute(update(organisations).where(organisations.c.id == int(record_id), changed)
                     .values(crm_account_id=account_id, updated_at=self.now))

    def linked(self, conn: Connection, mapping: ObjectMapping, record_id: str,
               remote_id: str | None) -> None:
        if not mapping.maps("crm_account_id"):  # the linked record is the account
            self.set_account(conn, record_id, remote_id)


_VISITOR_LINK = object_links.alias("visitor_link")
_HIT_LINK = object_links.alias("hit_link")
STORED_MARGIN = timedelta(minutes=10)


class WebsiteHitObjects(HubObjects):
    """Website Hits worth a salesperson's eye: scored (score > 0), not bots, of Website
    Visitors linked to a CRM record in this connection. Push only: a hit never changes, and
    `scan` leaves out hits already linked, so each is sent once, whenever its visitor got
    linked. `visitor_record` is the CRM id of the record its Website Visitor is linked to
    (the account, or the CRM's own Website Visitor record); `title` names the hit in one line
    (with its id, so it is unique) for CRMs that file hits as tasks or notes."""

    name = "website_hit"
    table = hits
    writable = ()
    computed = ("hit_id", "title", "visitor_record", "website_visitor_id", "occurred_at",
                "occurred_on", "url", "page_name", "category", "score", "channel",
                "campaign")

    def _key(self, record_id: str) -> Any:
        return uuid.UUID(record_id)

    def _select(self) -> Select[Any]:
        visitor_link, hit_link = _VISITOR_LINK, _HIT_LINK
        connection = self.connection_id if self.connection_id is not None else -1
        return (select(hits.c.id, hits.c.occurred_at, hits.c.occurred_at.label("updated_at"),
                       hits.c.url, hits.c.page_name,
                       hits.c.category, hits.c.score, hits.c.channel, hits.c.campaign_name,
                       hits.c.organisation_id, organisations.c.name.label("visitor_name"),
                       visitor_link.c.remote_id.label("visitor_record"))
                .select_from(
                    hits.join(organisations, organisations.c.id == hits.c.organisation_id)
                    .join(visitor_link, and_(
                        visitor_link.c.connection_id == connection,
                        visitor_link.c.hub_object == WebsiteVisitorObjects.name,
                        visitor_link.c.hub_id == func.cast(organisations.c.id, String))))
                .where(hits.c.score > 0, hits.c.is_bot.is_(False), is_website_visitor(),
                       ~visitor_link.c.remote_id.like("pending:%"),
                       ~visitor_link.c.remote_id.like("deleted:%"),
                       ~select(hit_link.c.id).where(
                           hit_link.c.connection_id == connection,
                           hit_link.c.hub_object == self.name,
                           hit_link.c.hub_id == _hex(hits.c.id)).exists()))

    def _changed_since(self, since: datetime) -> ColumnElement[bool]:
        """Hits stored since the last push (ids are UUIDv7 of their arrival; a margin covers
        writers whose commit came late), and every hit of a visitor linked since then."""
        return or_(hits.c.id >= floor_id(since - STORED_MARGIN),
                   _VISITOR_LINK.c.last_synced_at >= since)

    def scan(self, conn: Connection, since: datetime | None) -> Iterator[HubRecord]:
        for record in super().scan(conn, since):
            yield HubRecord(record.values["hit_id"], record.values, record.updated_at)

    def read(self, conn: Connection, ids: Sequence[str]) -> dict[str, HubRecord]:
        return {r.values["hit_id"]: HubRecord(r.values["hit_id"], r.values, r.updated_at)
                for r in super().read(conn, ids).values()}

    def _values(self, row: Any) -> dict[str, Any]:
        moment = row.occurred_at
        page = row.page_name or row.url
        return {
            "hit_id": row.id.hex, "visitor_record": row.visitor_record,
            "website_visitor_id": str(row.organisation_id), "occurred_at": _iso(moment),
            "occurred_on": moment.astimezone(UTC).date().isoformat(),
            "url": row.url, "page_name": row.page_name, "category": row.category,
            "score": row.score, "channel": row.channel, "campaign": row.campaign_name,
            "title": f"Website visit: {row.visitor_name[:40]} — {page[:80]} "
                     f"({moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC, hit {row.id.hex})",
        }

    def find(self, conn: Connection, match: Mapping[str, Any]) -> list[str]:
        return []  # hits are never created from a CRM record, nor matched to one

    def linked_by_key(self, conn: Connection, connection_id: int, field_name: str,
                      keys: set[str]) -> dict[str, str]:
        return {}  # a hit's id is its own: no other hit is its twin

    def write(self, conn: Connection, record_id: str, values: Mapping[str, Any], *,
              origin: str | None) -> None:
        return None


def _hex(column: Any) -> ColumnElement[str]:
    """A UUID column as 32 hex digits, the form hit ids take in object links (SQLite stores
    UUIDs that way; PostgreSQL's text form has hyphens)."""
    return func.replace(func.cast(column, String), "-", "")


def hub_objects(name: str, settings: Settings, decay: Decay, now: datetime,
                connection_id: int | None = None) -> HubObjects:
    kinds: dict[str, type[HubObjects]] = {"contact": ContactObjects,
                                          "website_visitor": WebsiteVisitorObjects,
                                          "website_hit": WebsiteHitObjects}
    return kinds[name](settings, decay, now, connection_id)
