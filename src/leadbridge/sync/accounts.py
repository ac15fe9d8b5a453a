"""Create a CRM account from a Website Visitor, on demand, and associate the two.

`leadbridge visitors create-account ID` and `POST /api/v1/website-visitors/{id}/create-account`
come here. The rules are the engine's, applied to one record at once:

- the connection's mapping manual says which CRM object is the account and which fields go;
- match before create: an account with the visitor's domain, else its name (the manual's
  match keys, in order; lowest CRM id first) that no other visitor holds is associated, not
  doubled; fields are then settled by each field's conflict rule, as on a first sync;
- a create is first written as a pending link, so a crash between the CRM's answer and our
  commit is resolved (by the next sync cycle, or here) by finding the account, never by
  creating it again;
- asking again is a no-op that reports the account already associated.

The connection's cycle lock is held throughout, so a sync cycle or a second request cannot
create the same account meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from leadbridge.config import Settings
from leadbridge.connections import (
    CrmConnection,
    build_connector,
    close_connector,
    credentials_for,
    get_connection,
    list_connections,
)
from leadbridge.connectors.base import (
    Connector,
    ConnectorError,
    ItemResult,
    ObjectSpec,
    Operation,
    OrderItem,
    Outcome,
    RemoteRecord,
)
from leadbridge.errors import ConnectionBusy, CrmError, InputError, NotFound
from leadbridge.identify.organisations import WEBSITE_VISITOR_TYPES, get_organisation
from leadbridge.keyring import load_keyring
from leadbridge.scoring.ruleset import load_decay
from leadbridge.store.db import writing
from leadbridge.sync import links
from leadbridge.sync.defaults import manual_for
from leadbridge.sync.hubobjects import HubRecord, WebsiteVisitorObjects
from leadbridge.sync.judge import Sides, Verdict, is_blank, judge
from leadbridge.sync.locks import connection_lock
from leadbridge.sync.mapping import ObjectMapping


@dataclass(frozen=True, slots=True)
class AccountLink:
    """What `create_account` did: `created`, `matched` (an existing account, by `matched_by`)
    or `existing` (the visitor was associated already)."""

    website_visitor_id: int
    connection: str
    crm_object: str
    account_id: str
    outcome: str
    matched_by: str | None = None


def create_account(db: Engine, settings: Settings, visitor_id: int,
                   connection: str | None = None, *, now: datetime | None = None) -> AccountLink:
    """Associate Website Visitor `visitor_id` with a CRM account of `connection` (the only
    enabled one when None), creating the account unless one matches or is associated."""
    moment = now or datetime.now(UTC)
    with db.connect() as conn:
        chosen = _connection(conn, connection)
        mapping = _account_mapping(settings, chosen)
        _check_visitor(conn, visitor_id)
    with connection_lock(db, chosen.id) as mine:
        if not mine:
            raise ConnectionBusy(f"a sync cycle of connection {chosen.name!r} is running; "
                                 "try again in a minute")
        existing = _existing(db, chosen, mapping, visitor_id)
        if existing is not None:
            return existing
        connector = _build(db, settings, chosen)
        try:
            return _Association(db, settings, chosen, mapping, connector, moment).run(
                visitor_id)
        finally:
            close_connector(connector)


def _build(db: Engine, settings: Settings, connection: CrmConnection) -> Connector:
    keyring = load_keyring(settings)
    with db.connect() as conn:
        credentials = credentials_for(conn, keyring, connection.name)
    return build_connector(connection.kind, connection.settings, credentials)


def _connection(conn: Any, name: str | None) -> CrmConnection:
    if name is not None:
        try:
            named = get_connection(conn, name)
        except NotFound:
            known = ", ".join(c.name for c in list_connections(conn)) or "none yet"
            raise NotFound(f"no connection named {name!r} (connections: {known})") from None
        if not named.enabled:
            raise InputError(f"connection {name!r} is disabled, so nothing is sent to its CRM")
        return named
    enabled = [c for c in list_connections(conn) if c.enabled]
    if not enabled:
        raise InputError("no CRM connection is set up; add one with "
                         "`leadbridge connections add`")
    if len(enabled) > 1:
        raise InputError("several CRM connections are enabled ("
                         + ", ".join(c.name for c in enabled) + "); name one")
    return enabled[0]


def _account_mapping(settings: Settings, connection: CrmConnection) -> ObjectMapping:
    manual = manual_for(connection.name, connection.kind, settings.sync.mappings)
    for mapping in manual.objects:
        if mapping.hub == WebsiteVisitorObjects.name and not mapping.maps("crm_account_id"):
            return mapping
    raise InputError(f"the mapping manual of connection {connection.name!r} pairs Website "
                     "Visitors with no CRM account object; add a `website_visitor` entry")


def _check_visitor(conn: Any, visitor_id: int) -> None:
    try:
        org = get_organisation(conn, visitor_id)
    except NotFound:
        raise NotFound(f"website visitor {visitor_id} does not exist") from None
    if org.merged_into_id is not None:
        raise InputError(f"organisation {visitor_id} ({org.name}) was merged into "
                         f"{org.merged_into_id}; create the account from that one")
    if org.blocked:
        raise InputError(f"organisation {visitor_id} ({org.name}) is blocked, so it is not a "
                         "Website Visitor; unblock it first")
    if org.type not in WEBSITE_VISITOR_TYPES:
        raise InputError(f"organisation {visitor_id} ({org.name}) is classified as "
                         f"{org.type}, not a Website Visitor; reclassify it first if it is "
                         "really a company")


def _existing(db: Engine, connection: CrmConnection, m: ObjectMapping,
              visitor_id: int) -> AccountLink | None:
    hub_id = str(visitor_id)
    with writing(db) as conn:
        link = links.by_hub(conn, connection.id, m.hub, [hub_id]).get(hub_id)
        if link is None:
            return None
        if link.pending:
            raise CrmError(f"an account for website visitor {visitor_id} was sent to "
                           f"{connection.name!r} and its answer is not recorded yet; run "
                           f"`leadbridge sync {connection.name}` to settle it")
        if link.deleted:  # deleted in the CRM earlier: a person asks for a new one
            links.remove(conn, link.id)
            return None
    return AccountLink(visitor_id, connection.name, m.crm, link.remote_id, "existing")


class _Association:
    def __init__(self, db: Engine, settings: Settings, connection: CrmConnection,
                 mapping: ObjectMapping, connector: Connector, now: datetime) -> None:
        self.db = db
        self.connection = connection
        self.m = mapping
        self.connector = connector
        spec = connector.objects.get(mapping.crm)
        if spec is None:
            raise InputError(f"connection {connection.name!r} has no CRM object "
                             f"{mapping.crm!r}; check its mapping manual")
        self.spec: ObjectSpec = spec
        with db.connect() as conn:
            decay = load_decay(conn, settings.scoring)
        self.hub = WebsiteVisitorObjects(settings, decay, now, connection.id)
        self.now = now

    def run(self, visitor_id: int) -> AccountLink:
        hub_id = str(visitor_id)
        with self.db.connect() as conn:
            record = self.hub.read(conn, [hub_id])[hub_id]
        found = self._match(record)
        if found is not None:
            account, key = found
            self._associate(record, account)
            return AccountLink(visitor_id, self.connection.name, self.m.crm, account.id,
                               "matched", key)
        account_id = self._create(record)
        return AccountLink(visitor_id, self.connection.name, self.m.crm, account_id,
                           "created")

    def _crm(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except ConnectorError as exc:
            later = " (it may answer again later)" if exc.retriable else ""
            raise CrmError(f"connection {self.connection.name!r} could not {what}{later}: "
                           f"{exc}") from exc

    def _match(self, record: HubRecord) -> tuple[RemoteRecord, str] | None:
        """The first match key with an account no other visitor holds; lowest CRM id."""
        for key in self.m.match:
            value = record.values.get(key)
            crm_key = self.m.crm_field(key)
            if is_blank(value) or crm_key not in self.spec.match_keys:
                continue
            found: list[RemoteRecord] = self._crm(f"look up {self.m.crm} by {crm_key}",
                                                  self.connector.find, self.m.crm,
                                                  {crm_key: value})
            with self.db.connect() as conn:
                held = links.by_remote(conn, self.connection.id, self.m.crm,
                                       [r.id for r in found])
            free = sorted((r for r in found if r.id not in held), key=lambda r: (len(r.id), r.id))
            if free:
                return free[0], key
        return None

    def _associate(self, record: HubRecord, account: RemoteRecord) -> None:
        """Link to an existing account; each field is settled by its rule, as on a first
        sync (the hub's score and permalink go to the account, its own name stays)."""
        to_crm: dict[str, Any] = {}
        to_hub: dict[str, Any] = {}
        agreed: dict[str, Any] = {}
        for f in self.m.fields:
            hub_value, crm_value = record.values.get(f.hub), account.fields.get(f.crm)
            verdict = judge(f, Sides(hub_value, crm_value, None, record.updated_at,
                                     account.modified_at, linked_before=False))
            if verdict == Verdict.PUSH:
                to_crm[f.crm] = hub_value
            elif verdict == Verdict.PULL and f.hub in self.hub.writable:
                to_hub[f.hub] = crm_value
            agreed[f.crm] = crm_value
        if to_crm:
            result = self._apply(OrderItem(record.id, self.m.crm, Operation.UPDATE, account.id,
                                           to_crm), f"update {self.m.crm} {account.id}")
            if result.outcome == Outcome.UPDATED:
                agreed.update(to_crm)  # else the next sync cycle pushes them again
        with writing(self.db) as conn:
            links.add(conn, self.connection.id, self.m.hub, record.id, self.m.crm, account.id,
                      agreed, self.now)
            self.hub.write(conn, record.id, to_hub, origin=self.connection.name)
            self.hub.linked(conn, self.m, record.id, account.id)

    def _create(self, record: HubRecord) -> str:
        values = {f.crm: record.values.get(f.hub) for f in self.m.fields
                  if f.pushes and not is_blank(record.values.get(f.hub))}
        payload = {**self.m.constants, **values}
        missing = [name for name in self.spec.required if is_blank(payload.get(name))]
        if missing:
            raise InputError(f"a new {self.m.crm} record in {self.connection.name!r} needs "
                             f"{', '.join(missing)}, and website visitor {record.id} has no "
                             "value for it; give it a constant in the mapping manual "
                             f"([sync.mappings.{self.connection.name}] constants)")
        with writing(self.db) as conn:  # the intent first: a crash below cannot double it
            links.add_intents(conn, self.connection.id, self.m.hub, self.m.crm,
                              [(record.id, payload)])
        item = OrderItem(record.id, self.m.crm, Operation.CREATE, None, payload)
        try:
            result = self._apply(item, f"create the {self.m.crm} record")
        except CrmError:
            if self._recover(record.id, payload):
                return self._confirmed(record.id)
            raise
        if result.outcome == Outcome.CREATED and result.remote_id:
            with writing(self.db) as conn:
                links.confirm_intents(conn, self.connection.id, self.m.hub,
                                      [(record.id, result.remote_id)], self.now)
                self.hub.linked(conn, self.m, record.id, result.remote_id)
            return result.remote_id
        with writing(self.db) as conn:
            links.remove_intent(conn, self.connection.id, self.m.hub, record.id)
        raise CrmError(f"connection {self.connection.name!r} refused the new {self.m.crm} "
                       f"record for website visitor {record.id}: "
                       f"{result.reason or result.outcome.value}")

    def _apply(self, item: OrderItem, what: str) -> ItemResult:
        results: list[ItemResult] = self._crm(what, self.connector.apply, [item])
        if len(results) != 1 or results[0].ref != item.ref:
            raise CrmError(f"connection {self.connection.name!r} answered a different record "
                           f"than it was sent; nothing was recorded for {item.ref}")
        return results[0]

    def _recover(self, hub_id: str, payload: dict[str, Any]) -> bool:
        """After a create with no answer: adopt the account if it reached the CRM (True);
        drop the intent if the CRM surely has none; keep it for the next cycle otherwise."""
        match = {self.m.crm_field(k): payload.get(self.m.crm_field(k)) for k in self.m.match}
        match = {k: v for k, v in match.items()
                 if k in self.spec.match_keys and not is_blank(v)}
        try:
            found = self.connector.find(self.m.crm, match) if match else []
        except ConnectorError:
            return False  # still unreachable: the next sync cycle resolves the intent
        with writing(self.db) as conn:
            if found:
                chosen = min(found, key=lambda r: (len(r.id), r.id))
                links.confirm_intents(conn, self.connection.id, self.m.hub,
                                      [(hub_id, chosen.id)], self.now)
                self.hub.linked(conn, self.m, hub_id, chosen.id)
                return True
            links.remove_intent(conn, self.connection.id, self.m.hub, hub_id)
        return False

    def _confirmed(self, hub_id: str) -> str:
        with self.db.connect() as conn:
            return links.by_hub(conn, self.connection.id, self.m.hub, [hub_id])[hub_id].remote_id
