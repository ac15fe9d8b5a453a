"""The marketing fields BottleCRM keeps as lines of a record's description."""

from __future__ import annotations

import re

import pytest

from leadbridge.config import load_settings
from leadbridge.connectors.bottlecrm import BottleCRMConnector
from leadbridge.connectors.bottlecrm.marketing import read_fields, write_fields
from leadbridge.errors import ConfigError


def test_typed_ids_are_read_with_or_without_the_prefix_and_in_any_case() -> None:
    found = read_fields("Met at the fair\nVisitor ID:  3F9A0C1D \ncall ref: CALL-7\n"
                        "source: a person's note, not ours")
    assert found == {"lb_visitor_id": "3F9A0C1D", "lb_call_ref": "CALL-7", "lb_channel": None,
                     "lb_source": None, "lb_campaign": None}
    assert read_fields("LeadBridge source: google\nLeadBridge channel: paid_search") == {
        "lb_visitor_id": None, "lb_call_ref": None, "lb_channel": "paid_search",
        "lb_source": "google", "lb_campaign": None}
    assert read_fields(None) == dict.fromkeys(
        ("lb_visitor_id", "lb_call_ref", "lb_channel", "lb_source", "lb_campaign"))


def test_writing_replaces_only_its_own_lines() -> None:
    before = "Met at the fair\nvisitor id: abc\n\nLeadBridge channel: email\nsource: note"
    after = write_fields(before, {"lb_channel": "paid_search", "lb_source": "google",
                                  "lb_campaign": "spring\nsale"})
    assert after.splitlines() == [
        "Met at the fair", "visitor id: abc", "", "source: note", "",
        "LeadBridge channel: paid_search", "LeadBridge source: google",
        "LeadBridge campaign: spring sale"]
    assert write_fields(after, {"lb_channel": "paid_search", "lb_source": "google",
                                "lb_campaign": "spring sale"}) == after  # stable
    assert write_fields(after, {"lb_channel": None, "lb_source": None, "lb_campaign": ""}) == (
        "Met at the fair\nvisitor id: abc\n\nsource: note")
    assert write_fields(None, {"lb_channel": "direct"}) == "LeadBridge channel: direct"


def test_the_connector_offers_the_fields_on_leads_contacts_and_opportunities_only() -> None:
    objects = BottleCRMConnector.objects
    for name in ("leads", "contacts", "opportunities"):
        assert {"lb_visitor_id", "lb_call_ref", "lb_channel"} <= set(objects[name].fields)
    assert "lb_visitor_id" not in objects["accounts"].fields


@pytest.mark.parametrize(("goal", "needle"), [
    ({"CLOSED_WON": {"action": ""}}, "conversions.goals.CLOSED_WON.action"),
    ({"CLOSED_WON": {"valu": 5}}, "conversions.goals.CLOSED_WON.valu"),
    ({"CLOSED_WON": {"value": -1}}, "conversions.goals.CLOSED_WON.value"),
])
def test_bad_goal_settings_name_the_field(tmp_path, goal: dict, needle: str) -> None:  # type: ignore[no-untyped-def,type-arg]
    with pytest.raises(ConfigError, match=re.escape(needle)):
        load_settings(tmp_path / "none.toml", conversions={"goals": goal})
    with pytest.raises(ConfigError, match=r"conversions\.writeback_model"):
        load_settings(tmp_path / "none.toml", conversions={"writeback_model": "u_shaped"})
