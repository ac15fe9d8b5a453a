"""Conversions derived from CRM stage changes: configurable goals per CRM stage.

`[conversions.goals."CLOSED WON"]` says that a record of `object` (opportunities by default)
whose `stage_field` reaches that stage is a conversion: action `action` (default "sale"),
worth the record's `amount_field` in its `currency_field` (else the goal's `currency`), or a
fixed `value` in the goal's `currency`, at the time the CRM changed the stage (its field
time, else the record's modified time, else the cycle's start: BottleCRM knows neither).

A goal is recorded once per connection, record and stage (`crm_goal_events`), through the
same intake as every other conversion (`intake.ConversionWriter`, source "crm", transaction
reference `crm:<connection>:<object>:<id>:<stage>`), so it is matched through the visitor id
or call reference on the record, de-duplicated and attributed like any other. A record that
cannot be recorded yet (no visitor id or call reference, an unknown one) keeps the reason
and is tried again the next time a cycle reads it — fixing the id in the CRM is enough.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from leadbridge.config import ConversionsSettings, GoalSettings
from leadbridge.connectors.base import RemoteRecord
from leadbridge.conversions.attribution import attribute_batch
from leadbridge.conversions.fields import RowRejected, parse_values
from leadbridge.conversions.importer import rule_from_settings
from leadbridge.conversions.intake import ACCEPTED, ConversionWriter
from leadbridge.conversions.writeback import marketing_ids
from leadbridge.store.tables import conversions, crm_goal_events, crm_marketing_refs

events = crm_goal_events


def stage_key(stage: object) -> str:
    """A stage compared ignoring case, spaces, hyphens and underscores."""
    return re.sub(r"[\s_-]+", "", str(stage or "")).casefold()


@dataclass(frozen=True, slots=True)
class GoalOutcome:
    remote_object: str
    remote_id: str
    stage: str
    conversion_id: object | None
    reason: str | None


class Goals:
    """The configured goals, looked up by CRM object and stage."""

    def __init__(self, settings: ConversionsSettings) -> None:
        self.settings = settings
        self.by_object: dict[str, dict[str, tuple[str, GoalSettings]]] = {}
        for stage, goal in settings.goals.items():
            self.by_object.setdefault(goal.object, {})[stage_key(stage)] = (stage, goal)

    def fields(self, obj: str) -> tuple[str, ...]:
        wanted: list[str] = ["name"]
        for _, goal in self.by_object.get(obj, {}).values():
            wanted += [goal.stage_field, goal.amount_field, goal.currency_field]
        return tuple(dict.fromkeys(wanted))

    def reached(self, record: RemoteRecord) -> tuple[str, GoalSettings] | None:
        for _, goal in self.by_object.get(record.object, {}).values():
            found = self.by_object[record.object].get(
                stage_key(record.fields.get(goal.stage_field)))
            if found is not None:
                return found
        return None

    def record(self, conn: Connection, connection_id: int, connection_name: str,
               records: Sequence[RemoteRecord], now: datetime) -> list[GoalOutcome]:
        """Record the goals these records reached (once each), in the caller's transaction."""
        reached = [(r, hit) for r in records if not r.deleted and (hit := self.reached(r))]
        if not reached:
            return []
        done = {(row.remote_object, row.remote_id, row.stage) for row in conn.execute(
            select(events.c.remote_object, events.c.remote_id, events.c.stage).where(
                events.c.connection_id == connection_id,
                events.c.remote_id.in_([r.id for r, _ in reached]),
                events.c.conversion_id.is_not(None)))}
        writer = ConversionWriter(conn, rule=rule_from_settings(self.settings), source="crm",
                                  attribute=attribute_batch, now=lambda: now)
        outcomes: list[GoalOutcome] = []
        for record, (stage, goal) in reached:
            if (record.object, record.id, stage) in done:
                continue
            ref = f"crm:{connection_name}:{record.object}:{record.id}:{stage}"[:200]
            conversion_id, reason = self._one(conn, connection_id, writer, record, goal, ref,
                                              now)
            self._remember(conn, connection_id, record, stage, conversion_id, reason, now)
            outcomes.append(GoalOutcome(record.object, record.id, stage, conversion_id, reason))
        return outcomes

    def _one(self, conn: Connection, connection_id: int, writer: ConversionWriter,
             record: RemoteRecord, goal: GoalSettings, ref: str,
             now: datetime) -> tuple[object | None, str | None]:
        visitor_key, call_ref = marketing_ids(record)
        if visitor_key is None and call_ref is None:
            return None, ("the record carries no visitor id or call reference to match it "
                          "to a visit or a call")
        moment = (record.field_times.get(goal.stage_field) or record.modified_at or now)
        amount: object
        if goal.value is not None:  # a fixed value is in the goal's own currency
            amount, currency = goal.value, goal.currency or record.fields.get(goal.currency_field)
        else:
            amount = record.fields.get(goal.amount_field)
            currency = record.fields.get(goal.currency_field) or goal.currency
        values = {"action": goal.action, "occurred_at": moment.isoformat(),
                  "transaction_ref": ref, "title": str(record.fields.get("name") or "")[:300],
                  "amount": "" if amount in (None, "") else str(amount),
                  "currency": str(currency or ""), "visitor_id": visitor_key or "",
                  "call_ref": call_ref or ""}
        try:
            row = parse_values({k: v.strip() for k, v in values.items()})
        except RowRejected as exc:
            return None, exc.reason
        outcome = writer.write([row])[0]
        if outcome.status == ACCEPTED:
            self._point_record_at(conn, connection_id, record, outcome.conversion_id,
                                  row.occurred_at)
            return outcome.conversion_id, None
        if outcome.reason and outcome.reason.startswith("duplicate"):
            earlier = conn.execute(select(conversions.c.id).where(
                conversions.c.transaction_ref == ref).order_by(conversions.c.id)).scalar()
            if earlier is not None:
                return earlier, None
        return None, outcome.reason

    def _point_record_at(self, conn: Connection, connection_id: int, record: RemoteRecord,
                         conversion_id: object, at: datetime) -> None:
        """The record that reached the goal shows this conversion's attribution."""
        conn.execute(update(crm_marketing_refs).where(
            crm_marketing_refs.c.connection_id == connection_id,
            crm_marketing_refs.c.remote_object == record.object,
            crm_marketing_refs.c.remote_id == record.id).values(
            conversion_id=conversion_id, conversion_at=at, due=True))

    def _remember(self, conn: Connection, connection_id: int, record: RemoteRecord, stage: str,
                  conversion_id: object | None, reason: str | None, now: datetime) -> None:
        key = (events.c.connection_id == connection_id,
               events.c.remote_object == record.object, events.c.remote_id == record.id,
               events.c.stage == stage)
        values = {"conversion_id": conversion_id, "reason": reason, "recorded_at": now}
        if conn.execute(update(events).where(*key).values(**values)).rowcount == 0:
            conn.execute(insert(events).values(connection_id=connection_id,
                                               remote_object=record.object,
                                               remote_id=record.id, stage=stage, **values))


def goal_events(conn: Connection, connection_id: int) -> Mapping[tuple[str, str, str], object]:
    """(object, id, stage) -> the row of each goal event of a connection."""
    return {(r.remote_object, r.remote_id, r.stage): r for r in conn.execute(
        select(events).where(events.c.connection_id == connection_id))}
