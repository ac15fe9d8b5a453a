"""The marketing fields connectors offer on leads, contacts and opportunities.

Operators type a call reference into the CRM, and web forms carry the tracker's visitor id in
a hidden field; the hub reads both to match CRM records (and the sales they close) to the
visits and calls that led to them, and writes each matched conversion's channel, source and
campaign back. Every connector offers these names, whatever the CRM stores them in: a
custom field where the CRM has them, a line of the description where it has none
(BottleCRM, see its connector).
"""

from __future__ import annotations

VISITOR_ID = "lb_visitor_id"  # the tracker's visitor id (Matomo `_id`)
CALL_REF = "lb_call_ref"  # the call-tracking system's reference of a call
CHANNEL = "lb_channel"  # written back: the attributed channel
SOURCE = "lb_source"  # written back: the attributed source
CAMPAIGN = "lb_campaign"  # written back: the attributed campaign

MATCH_FIELDS = (VISITOR_ID, CALL_REF)
ATTRIBUTION_FIELDS = (CHANNEL, SOURCE, CAMPAIGN)
MARKETING_FIELDS = MATCH_FIELDS + ATTRIBUTION_FIELDS

# the CRM objects that carry them, by their usual names
MARKETING_OBJECTS = ("leads", "contacts", "opportunities")
