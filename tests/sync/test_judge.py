"""Every conflict rule, with no database and no mocks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from leadbridge.sync.judge import Sides, Verdict, judge
from leadbridge.sync.mapping import Direction, FieldMapping, Rule

EARLY = datetime(2026, 1, 1, tzinfo=UTC)
LATE = datetime(2026, 6, 1, tzinfo=UTC)


def f(rule: Rule, direction: Direction = Direction.BOTH, blank: bool = False) -> FieldMapping:
    return FieldMapping(hub="x", crm="y", rule=rule, direction=direction, blank_overwrites=blank)


def both_changed(hub_time: datetime | None = None, crm_time: datetime | None = None) -> Sides:
    return Sides(hub="H", crm="C", agreed="A", hub_time=hub_time, crm_time=crm_time)


@pytest.mark.parametrize(("rule", "want"), [
    (Rule.CRM_WINS, Verdict.PULL),
    (Rule.HUB_WINS, Verdict.PUSH),
    (Rule.PREFER_CRM_UNLESS_BLANK, Verdict.PULL),
    (Rule.DONT_SYNC, Verdict.KEEP),
])
def test_both_sides_changed(rule: Rule, want: Verdict) -> None:
    assert judge(f(rule), both_changed()) == want


def test_most_recent_goes_by_time_and_falls_back_to_the_crm() -> None:
    assert judge(f(Rule.MOST_RECENT), both_changed(LATE, EARLY)) == Verdict.PUSH
    assert judge(f(Rule.MOST_RECENT), both_changed(EARLY, LATE)) == Verdict.PULL
    assert judge(f(Rule.MOST_RECENT), both_changed(None, None)) == Verdict.PULL
    assert judge(f(Rule.MOST_RECENT), both_changed(LATE, None)) == Verdict.PUSH


def test_one_side_changed_moves_to_the_other_under_any_rule_but_dont_sync() -> None:
    hub_only = Sides(hub="H", crm="A", agreed="A")
    crm_only = Sides(hub="A", crm="C", agreed="A")
    for rule in (Rule.CRM_WINS, Rule.HUB_WINS, Rule.MOST_RECENT, Rule.PREFER_CRM_UNLESS_BLANK):
        assert judge(f(rule), hub_only) == Verdict.PUSH, rule
        assert judge(f(rule), crm_only) == Verdict.PULL, rule
    assert judge(f(Rule.DONT_SYNC), hub_only) == Verdict.KEEP


def test_equal_values_need_nothing() -> None:
    assert judge(f(Rule.HUB_WINS), Sides(hub="same", crm="same", agreed="old")) == Verdict.KEEP


def test_direction_limits_the_verdict() -> None:
    crm_only = Sides(hub="A", crm="C", agreed="A")
    hub_only = Sides(hub="H", crm="A", agreed="A")
    assert judge(f(Rule.MOST_RECENT, Direction.TO_CRM), crm_only) == Verdict.KEEP
    assert judge(f(Rule.MOST_RECENT, Direction.TO_HUB), hub_only) == Verdict.KEEP
    assert judge(f(Rule.MOST_RECENT, Direction.TO_CRM), hub_only) == Verdict.PUSH


def test_blank_never_overwrites_unless_allowed() -> None:
    hub_cleared = Sides(hub="", crm="A", agreed="A")
    crm_cleared = Sides(hub="A", crm=None, agreed="A")
    assert judge(f(Rule.MOST_RECENT), hub_cleared) == Verdict.KEEP
    assert judge(f(Rule.MOST_RECENT), crm_cleared) == Verdict.KEEP
    assert judge(f(Rule.MOST_RECENT, blank=True), hub_cleared) == Verdict.PUSH
    assert judge(f(Rule.MOST_RECENT, blank=True), crm_cleared) == Verdict.PULL


def test_prefer_crm_unless_blank_fills_an_empty_crm_field() -> None:
    s = Sides(hub="+1 555", crm="", agreed=None, linked_before=False)
    assert judge(f(Rule.PREFER_CRM_UNLESS_BLANK), s) == Verdict.PUSH
    s = Sides(hub="+1 555", crm="+44 20", agreed=None, linked_before=False)
    assert judge(f(Rule.PREFER_CRM_UNLESS_BLANK), s) == Verdict.PULL


def test_first_sync_of_a_matched_pair_treats_both_as_changed() -> None:
    s = Sides(hub="H", crm="C", agreed=None, linked_before=False)
    assert judge(f(Rule.HUB_WINS), s) == Verdict.PUSH
    assert judge(f(Rule.CRM_WINS), s) == Verdict.PULL


def test_first_link_fills_a_blank_side_instead_of_keeping_it_empty() -> None:
    hub_blank = Sides(hub=None, crm="Ann", agreed=None, linked_before=False)
    crm_blank = Sides(hub="Ann", crm="", agreed=None, linked_before=False)
    assert judge(f(Rule.HUB_WINS), hub_blank) == Verdict.PULL
    assert judge(f(Rule.CRM_WINS), crm_blank) == Verdict.PUSH
    assert judge(f(Rule.HUB_WINS, Direction.TO_CRM), hub_blank) == Verdict.KEEP
