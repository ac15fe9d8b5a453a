"""Changing rules re-scores history; totals follow, on both databases."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from leadbridge.config import PageRuleConfig
from leadbridge.hub import Hub
from leadbridge.scoring.backfill import needs_rescore, rescore
from leadbridge.scoring.ruleset import replace_stored_rules
from support import rows, scalar, track


def _org_score(hub: Hub) -> float:
    w = scalar(hub.engine, "SELECT score_weight FROM organisations")
    return hub.decay.current(w, hub.now())


def test_changing_rules_rescores_hits_and_totals(client: TestClient, site_id: int,
                                                 hub: Hub) -> None:
    for path in ("/pricing", "/pricing/team", "/blog/x"):
        track(client, site_id, f"https://www.example.com{path}", _id="00000000000000aa",
              uid="dana@example.com")
    # default rules: one point a page view
    assert _org_score(hub) == pytest.approx(3, rel=1e-3)
    with hub.engine.begin() as conn:
        replace_stored_rules(conn, [PageRuleConfig(pattern="/pricing*", name="Pricing",
                                                   category="pricing", score=20)], [])
    assert needs_rescore(hub.engine, hub.settings)
    seen: list[tuple[int, int]] = []
    changed = rescore(hub.engine, hub.settings, lambda d, t: seen.append((d, t)))
    assert changed == 2  # the blog page keeps its default score
    assert seen[-1] == (3, 3)
    got = sorted((r.page_name, r.category, r.score) for r in
                 rows(hub.engine, "SELECT page_name, category, score FROM hits"))
    assert got[0][0].startswith("/blog") or got[0][0] == "/blog/x"
    assert [g[1:] for g in got if g[0] == "Pricing"] == [("pricing", 20.0), ("pricing", 20.0)]
    assert _org_score(hub) == pytest.approx(41, rel=1e-3)
    contact_w = scalar(hub.engine, "SELECT score_weight FROM contacts")
    assert hub.decay.current(contact_w, hub.now()) == pytest.approx(41, rel=1e-3)
    assert not needs_rescore(hub.engine, hub.settings)
    assert rescore(hub.engine, hub.settings) == 0  # idempotent
    assert _org_score(hub) == pytest.approx(41, rel=1e-3)
