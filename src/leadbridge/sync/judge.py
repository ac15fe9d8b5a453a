"""The judge: for one field of one linked record, which side's value stands.

Inputs are the value each side holds now, the value both last agreed on, and when each side
last changed (field time where known, else record time). A side "changed" when its value
differs from the agreed one. The answer is to push the hub's value, pull the CRM's, or leave
the field alone. No I/O: every rule is a unit test.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leadbridge.sync.mapping import Direction, FieldMapping, Rule


class Verdict(enum.StrEnum):
    PUSH = "push"  # the CRM takes the hub's value
    PULL = "pull"  # the hub takes the CRM's value
    KEEP = "keep"  # nothing to do


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass(frozen=True, slots=True)
class Sides:
    hub: Any
    crm: Any
    agreed: Any  # last value both sides held; None before the first sync
    hub_time: datetime | None = None
    crm_time: datetime | None = None
    linked_before: bool = True  # False on the first sync of this pair


def judge(mapping: FieldMapping, sides: Sides) -> Verdict:
    """Settle one field under the mapping's direction, rule and blank policy."""
    if mapping.rule == Rule.DONT_SYNC or sides.hub == sides.crm:
        return Verdict.KEEP
    hub_changed = not sides.linked_before or sides.hub != sides.agreed
    crm_changed = not sides.linked_before or sides.crm != sides.agreed
    if not hub_changed and not crm_changed:
        return Verdict.KEEP
    verdict = _rule(mapping.rule, sides, hub_changed, crm_changed)
    if verdict == Verdict.PUSH and mapping.direction == Direction.TO_HUB:
        return Verdict.KEEP
    if verdict == Verdict.PULL and mapping.direction == Direction.TO_CRM:
        return Verdict.KEEP
    if not mapping.blank_overwrites:
        # a blank never wipes a value; when a pair is first linked, it is filled instead
        if verdict == Verdict.PUSH and is_blank(sides.hub) and not is_blank(sides.crm):
            return Verdict.PULL if not sides.linked_before and mapping.pulls else Verdict.KEEP
        if verdict == Verdict.PULL and is_blank(sides.crm) and not is_blank(sides.hub):
            return Verdict.PUSH if not sides.linked_before and mapping.pushes else Verdict.KEEP
    return verdict


def _rule(rule: Rule, s: Sides, hub_changed: bool, crm_changed: bool) -> Verdict:
    if rule == Rule.CRM_WINS:
        return Verdict.PULL if crm_changed else Verdict.PUSH
    if rule == Rule.HUB_WINS:
        return Verdict.PUSH if hub_changed else Verdict.PULL
    if rule == Rule.PREFER_CRM_UNLESS_BLANK:
        if is_blank(s.crm):
            return Verdict.PUSH
        return Verdict.PULL if crm_changed or not hub_changed else Verdict.PUSH
    # most recent: the side that changed; both changed -> the later time; no times -> CRM
    if hub_changed and not crm_changed:
        return Verdict.PUSH
    if crm_changed and not hub_changed:
        return Verdict.PULL
    if s.hub_time is not None and s.crm_time is not None:
        return Verdict.PUSH if s.hub_time > s.crm_time else Verdict.PULL
    if s.hub_time is not None and s.crm_time is None:
        return Verdict.PUSH
    return Verdict.PULL
