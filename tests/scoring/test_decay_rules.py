from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from leadbridge.config import EventRuleConfig, PageRuleConfig
from leadbridge.errors import InputError
from leadbridge.scoring.decay import Decay, band_for
from leadbridge.scoring.rules import RuleSet, compile_page_pattern

NOW = datetime(2026, 11, 1, tzinfo=UTC)
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_score_halves_every_half_life() -> None:
    d = Decay(half_life_days=30, epoch=EPOCH)
    w = d.weight(10, NOW)
    assert d.current(w, NOW) == pytest.approx(10)
    assert d.current(w, NOW + timedelta(days=30)) == pytest.approx(5)
    assert d.current(w, NOW + timedelta(days=90)) == pytest.approx(1.25)


def test_weights_add_and_keep_order_of_current_scores() -> None:
    d = Decay(half_life_days=7, epoch=EPOCH)
    old_big = d.weight(100, NOW - timedelta(days=70))  # ~0.1 today
    recent_small = d.weight(5, NOW)
    assert recent_small > old_big
    total = old_big + recent_small
    assert d.current(total, NOW) == pytest.approx(5 + 100 / 1024)
    threshold = d.weight_threshold(5, NOW)
    assert total > threshold
    assert threshold == pytest.approx(recent_small)


def test_rebase_keeps_current_scores() -> None:
    d = Decay(half_life_days=1, epoch=NOW - timedelta(days=10))
    w = d.weight(42, NOW)
    later = NOW + timedelta(days=700)
    assert d.needs_rebase(later)
    d2, factor = d.rebased(later)
    assert d2.current(w * factor, later) == pytest.approx(d.current(w, later), rel=1e-9)
    assert not d2.needs_rebase(later) and math.isfinite(d2.weight(1, later))


def test_bands_pick_the_highest_threshold_reached() -> None:
    bands = {"cold": 0, "warm": 20, "hot": 50}
    assert [band_for(s, bands) for s in (-3, 0, 19.9, 20, 49, 50, 500)] == [
        "cold", "cold", "cold", "warm", "warm", "hot", "hot"]


def test_page_rules_first_match_wins_with_globs_and_regex() -> None:
    rules = RuleSet([
        PageRuleConfig(pattern="/pricing*", name="Pricing", category="pricing", score=10),
        PageRuleConfig(pattern="re:/docs/v\\d+/", name="Docs", category="docs", score=3),
        PageRuleConfig(pattern="shop.example.com/*", name="Shop", category="shop", score=2),
        PageRuleConfig(pattern="*://*/*", name="Anything", category="other", score=1),
    ], default_page_score=0.5)
    assert rules.score_page("https://www.example.com/pricing/enterprise?x=1", None).score == 10
    assert rules.score_page("https://www.example.com/PRICING", None).name == "Pricing"
    assert rules.score_page("https://www.example.com/docs/v2/intro", "Intro").category == "docs"
    assert rules.score_page("https://shop.example.com/cart", None).name == "Shop"
    assert rules.score_page("https://www.example.com/about", None).name == "Anything"
    bare = RuleSet([], default_page_score=0.5)
    m = bare.score_page("https://www.example.com/about", "About us")
    assert (m.name, m.category, m.score) == ("About us", "", 0.5)


def test_event_rules_match_category_action_name() -> None:
    rules = RuleSet(event_rules=[
        EventRuleConfig(category="form", action="submit", label="Form", score=30),
        EventRuleConfig(category="download", action="*", name="*.pdf", label="PDF", score=10),
    ])
    assert rules.score_event("form", "submit", "").score == 30
    assert rules.score_event("download", "click", "brochure.pdf").score == 10
    assert rules.score_event("download", "click", "brochure.zip").score == 0


def test_invalid_regex_is_reported_with_the_pattern() -> None:
    with pytest.raises(InputError, match=r"re:\(unclosed"):
        compile_page_pattern("re:(unclosed")


def test_fingerprint_changes_with_rules() -> None:
    a = RuleSet([PageRuleConfig(pattern="/a", score=1)])
    b = RuleSet([PageRuleConfig(pattern="/a", score=2)])
    assert a.fingerprint != b.fingerprint
    assert a.fingerprint == RuleSet([PageRuleConfig(pattern="/a", score=1)]).fingerprint
