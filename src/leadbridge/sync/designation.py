"""A CRM record that names its hub record: a person moves a link from the CRM side.

A CRM account carries its Website Visitor's permalink. When a salesperson sets it (on an
account not linked yet) or changes it (to another visitor's permalink), the pull links the
account to the Website Visitor it now names, and that visitor's associated account follows.
Only a *change* counts: a value equal to the one both sides last agreed on is left alone, so
an account that lost its visitor to another account does not take it back on the next pull.
An unlinked account may claim only a visitor that no other account holds.
"""

from __future__ import annotations

from sqlalchemy import Connection

from leadbridge.connectors.base import RemoteRecord
from leadbridge.sync import links
from leadbridge.sync.hubobjects import HubObjects
from leadbridge.sync.mapping import ObjectMapping, Rule


def target(conn: Connection, connection_id: int, m: ObjectMapping, hub: HubObjects,
           record: RemoteRecord, link: links.Link | None) -> str | None:
    """The hub id `record` now names, when that differs from its link; else None."""
    fields = [f for f in m.fields if f.hub in hub.designating and f.rule != Rule.DONT_SYNC]
    if not fields:
        return None
    if link is not None and all(record.fields.get(f.crm) == link.values.get(f.crm)
                                for f in fields):
        return None  # unchanged since both sides last agreed
    hub_id = hub.designated(conn, {f.hub: record.fields.get(f.crm) for f in fields})
    if hub_id is None or (link is not None and hub_id == link.hub_id):
        return None
    if link is None:
        held = links.by_hub(conn, connection_id, m.hub, [hub_id]).get(hub_id)
        if held is not None and not held.deleted:
            return None
    return hub_id


def release(conn: Connection, connection_id: int, m: ObjectMapping, hub: HubObjects,
            link: links.Link | None, hub_id: str) -> list[str]:
    """Drop the record's old link and the named hub record's link to another CRM record,
    so the two can be linked to each other; returns the remote ids whose links are gone."""
    gone: list[str] = []
    if link is not None:
        links.remove(conn, link.id)
        hub.linked(conn, m, link.hub_id, None)
        gone.append(link.remote_id)
    held = links.by_hub(conn, connection_id, m.hub, [hub_id]).get(hub_id)
    if held is not None:
        links.remove(conn, held.id)
        gone.append(held.remote_id)
    return gone
